"""Scoring engines for the service: the run's PyTorch model as it is, or its encoder exported to ONNX and run
by ONNX Runtime (`bsarec serve --engine onnx`).

Only the encoder (a history window, and for Caser the user rows, to the user representation h) goes through
ONNX Runtime: it is where eager PyTorch spends its per-request overhead (many small operators). The scores
h · item table, the exclusion of history, padding, `allow`/`deny`/`where` and the top-k stay one code path
(`bsarec.scoring.top_k`) for both engines, so their answers can only differ by the encoder's float
rounding (a parity test holds them to the same items and scores within 1e-4).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bsarec.errors import ConfigError
from bsarec.extras import require
from bsarec.models.item_features import freeze_item_features

log = logging.getLogger("bsarec")
ENGINES = ("auto", "onnx", "torch")


class EncoderGraph(nn.Module):
    """encode(history[, users]) as a module with plain tensor inputs, for export."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, history: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.encode(history, users=users)


class OnnxEncoder:
    """The encoder of a loaded recommender, exported once to ONNX and run by ONNX Runtime on the CPU with
    `threads` intra-op threads. Called as `encode(inputs, users=None)` like the model's own encoder.

    `graph` is an export of this same encoder made earlier (`self.graph` of another OnnxEncoder): `bsarec
    serve` exports once while it checks the run and hands the graph to its workers instead of exporting
    in each one."""

    def __init__(self, model: nn.Module, max_len: int, threads: int = 1, graph: bytes | None = None):
        onnxruntime = require("onnxruntime", "export", "bsarec serve --engine onnx")
        self.needs_users = bool(getattr(model, "needs_users", False))
        self.graph = graph if graph is not None else self._export(model, max_len)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(self.graph, options, providers=["CPUExecutionProvider"])
        expected = ["history", "users"] if self.needs_users else ["history"]
        if [i.name for i in self.session.get_inputs()] != expected:
            raise ConfigError(
                f"the ONNX graph given takes {self.session.get_inputs()}, this model {expected}"
            )

    def _export(self, model: nn.Module, max_len: int) -> bytes:
        graph = EncoderGraph(freeze_item_features(model)).eval()
        history = torch.randint(1, 2, (2, max_len))
        history[0, : max_len // 2] = 0
        example = (history, torch.zeros(2, dtype=torch.long)) if self.needs_users else (history,)
        names = ["history", "users"] if self.needs_users else ["history"]
        batch = torch.export.Dim("batch")
        shapes = ({0: batch}, {0: batch}) if self.needs_users else ({0: batch},)
        with tempfile.TemporaryDirectory() as folder, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(folder) / "encoder.onnx"
            torch.onnx.export(
                graph,
                example,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=["h"],
                dynamic_shapes=shapes,
                verbose=False,
                external_data=False,
            )
            return path.read_bytes()

    def __call__(self, inputs: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        feed: dict[str, Any] = {"history": inputs.numpy()}
        if self.needs_users:
            feed["users"] = (
                users if users is not None else torch.zeros(len(inputs), dtype=torch.long)
            ).numpy()
        (h,) = self.session.run(None, feed)
        return torch.from_numpy(np.ascontiguousarray(h))


def choose_engine(rec: Any, engine: str, threads: int = 1, graph: bytes | None = None) -> str:
    """Give `rec` the engine asked for and return its name: "onnx" exports the encoder (refused with the reason
    when the export extra is missing or the model does not export), "torch" keeps PyTorch, "auto" takes ONNX
    Runtime when it is installed and the model exports, PyTorch otherwise. `graph`: the encoder's ONNX export
    made earlier, used instead of exporting again."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine: expected one of {ENGINES}, got {engine!r}")
    if engine == "torch":
        rec.encoder = None
        return "torch"
    try:  # an export works on a copy: freezing item features replaces the model's table module
        model = rec.model if graph is not None else copy.deepcopy(rec.model).eval()
        rec.encoder = OnnxEncoder(model, rec.config.max_len, threads, graph)
    except Exception as error:  # the extra is missing, or the exporter cannot handle the model
        if engine == "onnx":
            raise ConfigError(f"--engine onnx: {type(error).__name__}: {error}") from error
        log.warning("serving with PyTorch: the ONNX engine is not available (%s)", error)
        rec.encoder = None
        return "torch"
    return "onnx"
