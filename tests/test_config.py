import pytest

from bsarec.config import RunConfig, parse_overrides, preset_values, resolve_config
from bsarec.errors import ConfigError


def test_paper_presets_per_dataset():
    assert preset_values("paper", "bsarec", "LastFM") == {
        "lr": 0.001,
        "alpha": 0.9,
        "c": 3,
        "num_heads": 1,
        "loss": "ce",
    }
    assert preset_values("paper", "bsarec", "beauty")["c"] == 5
    assert preset_values("paper", "sasrec", "Anything")["loss"] == "bce"
    with pytest.raises(ConfigError, match="no paper settings"):
        preset_values("paper", "bsarec", "MyShop")


def test_precedence_defaults_preset_set_flags(tmp_path):
    config = resolve_config(
        "bsarec",
        "LastFM",
        "LastFM",
        "paper",
        parse_overrides(["alpha=0.5", "hidden_size=32"]),
        seed=3,
        epochs=None,
    )
    assert (config.alpha, config.c, config.hidden_size, config.seed, config.epochs) == (0.5, 3, 32, 3, 200)
    preset = tmp_path / "best.json"
    preset.write_text('{"settings": {"alpha": 0.2, "c": 7}}')
    assert resolve_config("bsarec", "x", "x", str(preset)).c == 7


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["nope=1"], "unknown setting"),
        (["alpha"], "expected key=value"),
        (["epochs=ten"], "expected int"),
        (["flush_denormal=maybe"], "flush_denormal=maybe: expected true or false"),
    ],
)
def test_bad_overrides(pairs, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides(pairs)


def test_boolean_overrides():
    assert parse_overrides(["flush_denormal=false"]) == {"flush_denormal": False}
    assert parse_overrides(["flush_denormal=Yes"]) == {"flush_denormal": True}
    assert RunConfig().flush_denormal is True


def test_validation_and_loss_defaults():
    assert RunConfig(model="sasrec").resolved_loss == "bce" and RunConfig().resolved_loss == "ce"
    with pytest.raises(ConfigError, match="num_heads"):
        RunConfig(num_heads=3)
    with pytest.raises(ConfigError, match="history_mask"):
        RunConfig(history_mask="drop")
    assert RunConfig.from_dict(RunConfig(c=9).to_dict()).c == 9


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"padding": "mirror"}, "padding"),
        ({"candidates": "sampled"}, "candidates"),
        ({"monitor": "NDCG@50"}, "monitor"),
        ({"device": "tpu"}, "device"),
        ({"model": "caser", "loss": "ce"}, "loss"),
        ({"model": "bert4rec", "mask_ratio": 0.01}, "mask_ratio"),
        ({"eval_negatives": 0}, "eval_negatives"),
        ({"sim": "l2"}, "sim"),
        ({"flush_denormal": "no"}, "flush_denormal"),
    ],
)
def test_switchboard_and_baseline_settings_are_validated(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**changes)


def test_each_model_gets_only_its_own_settings():
    assert "alpha" in RunConfig(model="bsarec").model_settings()
    caser = RunConfig(model="caser").model_settings()
    assert {"nh", "nv", "reg_weight"} <= set(caser) and "alpha" not in caser and "num_heads" not in caser
    assert RunConfig(model="fearec").model_settings()["topk_factor"] == 10
    assert RunConfig(model="gru4rec").resolved_loss == "bpr"
