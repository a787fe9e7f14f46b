"""Models: one file each, every one a `SequentialModel` (the contract in base.py); `build_model` maps a
resolved config to a model, and `hyperparameter_default` reads a setting's default from the constructors."""

from __future__ import annotations

import inspect
from typing import Any

from bsarec.models.base import SequentialModel, StackedBlocksModel
from bsarec.models.bert4rec import BERT4Rec
from bsarec.models.bsarec import BSARec
from bsarec.models.caser import Caser
from bsarec.models.duorec import DuoRec
from bsarec.models.fearec import FEARec
from bsarec.models.fmlprec import FMLPRec
from bsarec.models.gru4rec import GRU4Rec
from bsarec.models.sasrec import SASRec
from bsarec.models.tvrec import TVRec
from bsarec.models.wearec import WEARec

MODELS: dict[str, type[SequentialModel]] = {
    "bsarec": BSARec,
    "caser": Caser,
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "bert4rec": BERT4Rec,
    "fmlprec": FMLPRec,
    "duorec": DuoRec,
    "fearec": FEARec,
    "tvrec": TVRec,
    "wearec": WEARec,
}
DISPLAY_NAMES = {name: cls.__name__ for name, cls in MODELS.items()} | {"tvrec": "TV-Rec"}


def model_parameters(name: str) -> list[str]:
    """The hyperparameters a model's constructor takes (besides the data sizes)."""
    params = inspect.signature(MODELS[name]).parameters
    return [p for p in params if p not in ("n_items", "n_users")]


def hyperparameter_default(name: str) -> Any:
    """The default of a constructor argument, the same in every model that takes it (checked here)."""
    defaults = {
        inspect.signature(cls).parameters[name].default
        for cls in MODELS.values()
        if name in inspect.signature(cls).parameters
    }
    if len(defaults) != 1:
        raise RuntimeError(
            f"the models disagree on the default of {name!r}: {defaults or 'no model takes it'}"
        )
    return defaults.pop()


def build_model(
    name: str, n_items: int, settings: dict[str, Any], n_users: int | None = None
) -> SequentialModel:
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
    "SASRec",
    "SequentialModel",
    "StackedBlocksModel",
    "TVRec",
    "WEARec",
    "build_model",
    "hyperparameter_default",
    "model_parameters",
]
