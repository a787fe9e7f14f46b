"""Models: one file each; `build_model` maps a resolved config to a model."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from bsarec.models.bert4rec import BERT4Rec
from bsarec.models.bsarec import BSARec
from bsarec.models.caser import Caser
from bsarec.models.duorec import DuoRec
from bsarec.models.fearec import FEARec
from bsarec.models.fmlprec import FMLPRec
from bsarec.models.gru4rec import GRU4Rec
from bsarec.models.popularity import Popularity
from bsarec.models.sasrec import SASRec

MODELS: dict[str, type[nn.Module]] = {
    "bsarec": BSARec,
    "caser": Caser,
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "bert4rec": BERT4Rec,
    "fmlprec": FMLPRec,
    "duorec": DuoRec,
    "fearec": FEARec,
}
DISPLAY_NAMES = {name: cls.__name__ for name, cls in MODELS.items()}


def model_parameters(name: str) -> list[str]:
    """The hyperparameters a model's constructor takes (besides the data sizes)."""
    params = inspect.signature(MODELS[name]).parameters
    return [p for p in params if p not in ("n_items", "n_users")]


def build_model(name: str, n_items: int, settings: dict[str, Any], n_users: int | None = None) -> nn.Module:
    """Build a model from its constructor arguments (a subset of the run config)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    cls = MODELS[name]
    if "n_users" in inspect.signature(cls).parameters:
        if n_users is None:
            raise ValueError(f"{name} needs the number of users")
        return cls(n_items=n_items, n_users=n_users, **settings)
    return cls(n_items=n_items, **settings)


__all__ = [
    "DISPLAY_NAMES",
    "MODELS",
    "BERT4Rec",
    "BSARec",
    "Caser",
    "DuoRec",
    "FEARec",
    "FMLPRec",
    "GRU4Rec",
    "Popularity",
    "SASRec",
    "build_model",
    "model_parameters",
]
