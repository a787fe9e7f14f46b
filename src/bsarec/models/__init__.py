"""Models: one file each; `build_model` maps a resolved config to a model."""

from __future__ import annotations

from typing import Any

from torch import nn

from bsarec.models.bsarec import BSARec
from bsarec.models.popularity import Popularity
from bsarec.models.sasrec import SASRec

MODELS: dict[str, type[nn.Module]] = {"bsarec": BSARec, "sasrec": SASRec}


def build_model(name: str, n_items: int, settings: dict[str, Any]) -> nn.Module:
    """Build a model from its constructor arguments (a subset of the run config)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](n_items=n_items, **settings)


__all__ = ["MODELS", "BSARec", "Popularity", "SASRec", "build_model"]
