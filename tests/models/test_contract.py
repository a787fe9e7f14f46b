"""Every model implements the contract of models/base.py, and each default is written once."""

import inspect

import pytest
import torch

from bsarec.config import RunConfig
from bsarec.errors import ConfigError
from bsarec.models import MODELS, SequentialModel, build_model, hyperparameter_default, model_parameters
from bsarec.models.base import check_loss
from bsarec.models.layers import Dropout, use_torch_dropout


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_states_its_contract(name):
    cls = MODELS[name]
    assert issubclass(cls, SequentialModel) and cls.losses
    model = build_model(name, 30, {"hidden_size": 8, "max_len": 6}, n_users=5)
    assert model.objective == cls.losses[0]  # the paper's objective by default
    assert model.needs_negatives == (model.objective in ("bce", "bpr"))
    assert model.item_embeddings.shape[1] == 8
    inputs = torch.randint(1, 30, (4, 6))
    assert model.eval().encode(inputs).shape == (4, 8)
    for loss in cls.losses:
        built = build_model(name, 30, {"hidden_size": 8, "max_len": 6, "loss": loss}, n_users=5)
        assert built.objective == loss
    with pytest.raises(ConfigError, match=f"{cls.__name__} trains with"):
        build_model(name, 30, {"loss": "hinge"}, n_users=5)


def test_the_config_reads_every_model_default_from_the_constructors():
    for name, cls in MODELS.items():
        settings = RunConfig(model=name).model_settings()
        for parameter in model_parameters(name):
            default = inspect.signature(cls).parameters[parameter].default
            if parameter == "alpha":  # the one setting whose default differs between models
                assert RunConfig().alpha is None and settings["alpha"] == default
            elif parameter != "loss":
                assert settings[parameter] == default == hyperparameter_default(parameter)
    assert (
        RunConfig(model="sasrec").resolved_loss == "bce" and RunConfig(model="bsarec").resolved_loss == "ce"
    )
    assert RunConfig(model="wearec").resolved("alpha") == 0.3 and RunConfig().resolved("alpha") == 0.9
    assert RunConfig(model="tvrec").resolved("train_samples") == "nonempty"
    assert RunConfig(model="bsarec").resolved("train_samples") == "prefixes"


def test_the_config_checks_the_loss_through_the_model():
    check_loss(MODELS["sasrec"], "ce")
    with pytest.raises(ConfigError, match="GRU4Rec trains with \\('bpr',\\), got 'ce'"):
        RunConfig(model="gru4rec", loss="ce")


def test_torch_dropout_is_set_per_model_not_for_the_process():
    plain, ours = use_torch_dropout(build_model("bsarec", 30, {})), build_model("bsarec", 30, {})
    assert all(not m.byte_masks for m in plain.modules() if isinstance(m, Dropout))
    assert all(m.byte_masks for m in ours.modules() if isinstance(m, Dropout))
