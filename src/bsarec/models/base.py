"""The contract every model implements, and the embedding + block stack the Transformer-style models share.

A model (`SequentialModel`) states:
- `losses`: the objectives it can train with, its paper's objective first (the default);
- what the training loop must put in a batch besides `inputs` and `targets` (models/batch.py names every
  field): `needs_negatives` (one sampled negative per sample: true exactly when the objective is "bce" or
  "bpr"), `needs_users` (dataset rows, a class attribute) and `needs_positives` (a same-target sample's
  input, a class attribute);
- `encode(input_ids, users=None)`: the user representation (B, d) of left-padded item windows;
- `item_embeddings`: the output table (V, d); the score of item v is encode(...) · item_embeddings[v];
- `loss(batch)`: the scalar training loss of a `Batch` (which also carries sampled softmax items when the
  run asks for them);
- `item_table()` / `set_item_table(module)`: the module that holds its items (read on the input and the
  output side), which item side information replaces (models/item_features.py);
- `train_samples`: the training samples its paper built, "prefixes" (every prefix of the last max_len
  training items, the empty one included; BSARec's protocol) or "nonempty" (TV-Rec's: no empty input).
The run config reads each model's hyperparameters and their defaults from its constructor signature, so a
default is written once, there.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bsarec.errors import ConfigError
from bsarec.models.batch import Batch
from bsarec.models.layers import ItemPositionEmbedding, MultiHeadSelfAttention, causal_padding_mask
from bsarec.models.losses import next_item_loss, target_negative_bce

ONE_NEGATIVE_LOSSES = ("bce", "bpr")


def check_loss(model: type[SequentialModel], loss: str) -> None:
    """Raise ConfigError unless `model` trains with `loss`."""
    if loss not in model.losses:
        raise ConfigError(f"loss: {model.__name__} trains with {model.losses}, got {loss!r}")


class SequentialModel(nn.Module):
    """Base class of every model: the contract above, and the choice of objective."""

    losses: ClassVar[tuple[str, ...]]
    needs_users: ClassVar[bool] = False
    needs_positives: ClassVar[bool] = False
    train_samples: ClassVar[str] = "prefixes"

    def __init__(self, n_items: int, loss: str | None):
        super().__init__()
        loss = loss or self.losses[0]
        check_loss(type(self), loss)
        self.n_items = n_items
        self.objective = loss

    @property
    def needs_negatives(self) -> bool:
        return self.objective in ONE_NEGATIVE_LOSSES

    @property
    def item_embeddings(self) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def item_table(self) -> nn.Module:
        """The module that holds the items (read on the input and the output side): an nn.Embedding, or
        the FeatureItemEmbedding that item side information puts in its place."""
        raise NotImplementedError

    def set_item_table(self, table: nn.Module) -> None:
        raise NotImplementedError


class StackedBlocksModel(SequentialModel):
    """Item + position embedding, a stack of blocks, and tied-embedding scoring; subclasses supply the blocks.
    Its `loss` is the chosen objective at the last position: full-softmax cross-entropy ("ce", sampled
    softmax when the batch brings sampled items) or BCE against one sampled negative ("bce")."""

    def __init__(
        self, n_items: int, hidden_size: int, max_len: int, hidden_dropout: float, loss: str | None = None
    ):
        super().__init__(n_items, loss)
        self.max_len = max_len
        self.embedding = ItemPositionEmbedding(n_items, hidden_size, max_len, hidden_dropout)
        self.blocks = nn.ModuleList()

    @property
    def item_embeddings(self) -> torch.Tensor:
        """The output table: tied to the input item embeddings, row 0 (padding) included."""
        return self.embedding.item.weight

    def item_table(self) -> nn.Module:
        return self.embedding.item

    def set_item_table(self, table: nn.Module) -> None:
        self.embedding.item = table

    def block_mask(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        """What every block is given, besides its input, to tell items from padding: here the additive causal
        attention mask (B, 1, N, N); BERT4Rec's is bidirectional, TV-Rec's the rows that hold items (B, N, 1),
        and FMLP-Rec's and WEARec's None (their filters see every slot)."""
        return causal_padding_mask(input_ids)

    def forward(self, input_ids: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Hidden states (B, N, d), or (B, d) for the last position only."""
        mask = self.block_mask(input_ids)
        x = self.embedding(input_ids)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        return x[:, -1] if last_only else x

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """User representation: the output at the last position, (B, d)."""
        return self.forward(input_ids, last_only=True)

    def hidden_states(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """[embedding output, block 1 output, ...] for analysis."""
        mask = self.block_mask(input_ids)
        states = [self.embedding(input_ids)]
        for block in self.blocks:
            states.append(block(states[-1], mask))
        return states

    def attention_maps(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Each block's self-attention probabilities (B, heads, N, N), for analysis; [] without attention."""
        if not all(isinstance(getattr(b, "attention", None), MultiHeadSelfAttention) for b in self.blocks):
            return []
        mask = self.block_mask(input_ids)
        x, maps = self.embedding(input_ids), []
        for block in self.blocks:
            maps.append(block.attention.attention_map(x, mask))
            x = block(x, mask)
        return maps

    def loss(self, batch: Batch) -> torch.Tensor:
        h = self.encode(batch["inputs"])
        if (
            self.objective == "bce"
        ):  # label 1 for the target, 0 for one sampled negative (SASRec as the paper ran it)
            return target_negative_bce(h, self.item_embeddings, batch["targets"], batch["negatives"])
        # full-softmax CE against every item (row 0 included, as the reference), or sampled softmax
        return next_item_loss(h, self.item_embeddings, batch)
