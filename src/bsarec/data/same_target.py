"""Same-target positives for the contrastive models (DuoRec, FEARec), as in docs/baselines.md.

Every training sample (prefix + target) is grouped by its target. For an anchor with target t, the positive
is drawn uniformly from group t; when the group holds at least two different samples (by content), the draw is
repeated until it differs in content from the anchor. A group with a single content gives the anchor back.
The positive's input is that sample's padded prefix (its target dropped), which is exactly its row of the
training inputs. The table is built in memory with sorting (no per-item Python loop and no cache file).
"""

from __future__ import annotations

import numpy as np
import torch


class SameTargetSampler:
    def __init__(self, train_inputs: torch.Tensor, train_targets: torch.Tensor):
        inputs, targets = train_inputs.cpu().numpy(), train_targets.cpu().numpy()
        rows = np.column_stack([inputs, targets])
        _, content = np.unique(rows, axis=0, return_inverse=True)
        self.content = torch.from_numpy(content.reshape(-1).astype(np.int64))
        self.order = torch.from_numpy(np.argsort(targets, kind="stable").astype(np.int64))
        n_targets = int(targets.max()) + 1 if len(targets) else 1
        counts = np.bincount(targets, minlength=n_targets)
        self.counts = torch.from_numpy(counts.astype(np.int64))
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64))
        # groups with two or more different contents: count the distinct (target, content) pairs
        pairs = np.unique(np.column_stack([targets, content.reshape(-1)]), axis=0)
        distinct = np.bincount(pairs[:, 0], minlength=n_targets) if len(pairs) else np.zeros(n_targets)
        self.has_alternative = torch.from_numpy(distinct >= 2)
        self.targets = train_targets.cpu()

    def sample(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Indices of one same-target positive sample per anchor sample index."""
        t = self.targets[anchors]
        start, size = self.offsets[t], self.counts[t]
        draw = self._draw(start, size, generator)
        redo = self.has_alternative[t] & (self.content[draw] == self.content[anchors])
        while redo.any():
            draw[redo] = self._draw(start[redo], size[redo], generator)
            redo &= self.content[draw] == self.content[anchors]
        return draw

    def _draw(self, start: torch.Tensor, size: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        position = (torch.rand(size.shape, generator=generator, dtype=torch.float64) * size).long()
        return self.order[start + position.clamp(max=size - 1)]
