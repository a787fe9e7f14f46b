"""Export a trained run as a scoring graph: ONNX (for ONNX Runtime) or TorchScript.

The graph takes `history`, a (batch, max_len) int64 tensor of internal item ids, left-padded with 0 (as
`bsarec.data.split.pad_left` builds it; the id map is in the run's dataset/id_maps.json and in the exported
metadata), and returns the scores of every item (batch, V), padding column at -inf; or, with `top_k`, the ids
and scores of the k best items. `exclude_seen` also puts the items of the given window at -inf.
Every model exports: BSARec's low-pass filter and FEARec's band projections and cross-correlation run as real
matrix products, FMLPRec's filter as ONNX DFT operators. The export is checked at once: the exported graph
and PyTorch must agree within `tolerance` on a batch of another size than the tracing example.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bsarec.api import SequentialRecommender
from bsarec.errors import ConfigError
from bsarec.extras import require
from bsarec.io import atomic_write_json
from bsarec.models.item_features import freeze_item_features

FORMATS = ("onnx", "torchscript")


class ScoringGraph(nn.Module):
    def __init__(self, model: nn.Module, top_k: int | None = None, exclude_seen: bool = False):
        super().__init__()
        self.model, self.top_k, self.exclude_seen = model, top_k, exclude_seen
        n_items = model.item_embeddings.size(0)
        self.register_buffer("padding", torch.arange(n_items) == 0, persistent=False)

    def forward(self, history: torch.Tensor):
        scores = self.model.encode(history) @ self.model.item_embeddings.T
        scores = scores.masked_fill(self.padding, float("-inf"))
        if self.exclude_seen:
            scores = scores.scatter(1, history, float("-inf"))
        if self.top_k is not None:
            values, ids = scores.topk(self.top_k, dim=1)
            return ids, values
        return scores


def _examples(n_items: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    trace = torch.randint(1, n_items, (2, max_len), generator=generator)
    trace[0, : max_len // 2] = 0
    check = torch.randint(1, n_items, (5, max_len), generator=generator)
    check[1:3, : max_len - 3] = 0
    return trace, check


def _outputs(result) -> list[np.ndarray]:
    items = result if isinstance(result, (list, tuple)) else [result]
    return [x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x) for x in items]


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    output: str | Path | None = None,
    top_k: int | None = None,
    exclude_seen: bool = False,
    tolerance: float = 1e-5,
) -> dict[str, Any]:

    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {FORMATS}, got {fmt!r}")
    rec = SequentialRecommender.load(run_dir)
    model = freeze_item_features(rec.model).eval()  # item features: their table, computed once
    n_items, max_len = rec.dataset.n_items, rec.config.max_len
    if top_k is not None and not 1 <= top_k < n_items:
        raise ConfigError(f"--top-k: expected 1..{n_items - 1}, got {top_k}")
    graph = ScoringGraph(model, top_k, exclude_seen).eval()
    output = (
        Path(output)
        if output
        else Path(run_dir) / ("model.onnx" if fmt == "onnx" else "model.torchscript.pt")
    )
    trace, check = _examples(n_items, max_len)
    names = ["ids", "scores"] if top_k else ["scores"]
    _check_room(output, model)
    # written into a hidden staging directory (with any external data file beside it) and moved into place
    # once checked: an export that fails leaves nothing half-written
    final = output
    staging = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    staging.mkdir(exist_ok=True)
    output = staging / final.name
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = _outputs(graph(check))
            if fmt == "onnx":
                torch.onnx.export(
                    graph,
                    (trace,),
                    str(output),
                    dynamo=True,
                    input_names=["history"],
                    output_names=names,
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    verbose=False,
                )
                onnxruntime = require("onnxruntime", "export", "checking an ONNX export")
                session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
                got = session.run(None, {"history": check.numpy()})
            else:
                scripted = torch.jit.trace(graph, (trace,), check_trace=False)
                scripted.save(str(output))
                got = _outputs(torch.jit.load(str(output))(check))
        pairs = list(zip(got, expected, strict=True))
        error = max(
            float(np.max(np.abs(g[np.isfinite(e)] - e[np.isfinite(e)]), initial=0.0)) for g, e in pairs
        )
        same_inf = all(np.array_equal(np.isinf(g), np.isinf(e)) for g, e in pairs)
        if error > tolerance or not same_inf:
            raise ConfigError(
                f"{final}: the exported graph differs from PyTorch by {error:.2e} (> {tolerance})"
            )
        for produced in staging.iterdir():
            os.replace(produced, final.parent / produced.name)
    except OSError:  # a full disk: the caller says so; nothing half-written is left
        raise
    except ConfigError:
        raise
    except Exception as exc:  # an exporter that cannot handle the model says so, with its reason
        raise ConfigError(
            f"{rec.config.model} cannot be exported to {fmt}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    output = final
    meta = {
        "format": fmt,
        "file": output.name,
        "model": rec.config.model,
        "input": {
            "name": "history",
            "shape": ["batch", max_len],
            "dtype": "int64",
            "padding": rec.config.padding,
        },
        "outputs": names,
        "top_k": top_k,
        "exclude_seen": exclude_seen,
        "max_abs_error_vs_pytorch": error,
        "item_ids": rec.dataset.item_ids,  # original id of each internal id (index 0: padding)
    }
    atomic_write_json(output.with_name(output.name + ".json"), meta)
    return {k: v for k, v in meta.items() if k != "item_ids"} | {"output": str(output)}


def _check_room(output: Path, model: nn.Module) -> None:
    """Refuse an export that cannot fit the disk before writing it: a writer that runs out of space can abort
    the process (a C++ abort) instead of raising an error."""
    if not output.parent.is_dir():
        raise ConfigError(f"--output {output}: its directory {output.parent} does not exist")
    needed = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values()) + (1 << 20)
    free = shutil.disk_usage(output.parent).free
    if free < needed:
        raise ConfigError(
            f"{output}: {free / 2**20:.1f} MiB free on its disk, the export needs about {needed / 2**20:.1f} MiB"
        )


def load_metadata(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(str(path) + ".json").read_text())
