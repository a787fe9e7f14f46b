import re

import pytest

from bsarec.config import (
    RunConfig,
    defaults_stand_in,
    load_built_in_preset,
    parse_overrides,
    preset_values,
    resolve_config,
)
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


def _settings(model: str, dataset: str, preset: str, label: str = "") -> dict:
    """The resolved run settings of PRESET changed by a candidate label's --set pairs ("c=3", "a=1,b=2")."""
    overrides = parse_overrides(label.removesuffix(" (paper)").split(",")) if label else {}
    return resolve_config(model, dataset, dataset, preset, overrides).to_dict() | {"preset": None}


def test_defaults_stand_in_only_where_a_model_has_settings_for_other_datasets():
    assert defaults_stand_in("tvrec", "Toys_and_Games") and defaults_stand_in("wearec", "yelp")
    assert not defaults_stand_in("tvrec", "Beauty")  # its authors' own setting
    assert not defaults_stand_in("sasrec", "Toys_and_Games")  # one setting everywhere, as in the paper
    assert not defaults_stand_in("bsarec", "Toys_and_Games") and not defaults_stand_in("nomodel", "LastFM")
    assert preset_values("paper", "tvrec", "Toys_and_Games") == load_built_in_preset("paper")["tvrec"]["*"]


def test_best_preset_is_a_validation_choice_per_dataset():
    assert preset_values("best", "bsarec", "lastfm")["max_len"] == 200
    assert preset_values("best", "bsarec", "Beauty") == preset_values("paper", "bsarec", "Beauty")
    best = load_built_in_preset("best")
    for key, selection in best["selection"].items():
        model, dataset = key.split("/")
        if model == "recommender":  # every model searched: tests/test_best_recommender.py
            continue
        chosen = max(selection["candidates"], key=selection["candidates"].get)
        assert chosen == selection["chosen"]  # the argmax of the validation scores, nothing else
        assert "validation" in selection["criterion"]
        # every candidate is the paper preset changed by its label's --set pairs; the chosen one is what ships
        named = {label: _settings(model, dataset, "paper", label) for label in selection["candidates"]}
        paper = _settings(model, dataset, "paper")
        assert all(named[label] == paper for label in named if label.endswith(" (paper)"))
        assert _settings(model, dataset, "best") == named[chosen]
    with pytest.raises(ConfigError, match="no best settings for sasrec"):
        preset_values("best", "sasrec", "LastFM")
    with pytest.raises(ConfigError, match="no best settings for bsarec on 'ML-1M'"):
        preset_values("best", "bsarec", "ML-1M")


def test_unknown_preset_names_the_built_in_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"expected a built-in preset \(paper, best\) or a JSON file"):
        preset_values(str(tmp_path / "missing.json"), "bsarec", "LastFM")


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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": -1.0}, "lr: must be > 0"),
        ({"lr": float("nan")}, "lr: expected a float \\(finite\\), got nan"),
        ({"lr": "fast"}, "lr: expected a float"),
        ({"weight_decay": -0.1}, "weight_decay: must be >= 0"),
        ({"eval_batch_size": 0}, "eval_batch_size: must be >= 1"),
        ({"threads": -1}, "threads: must be >= 1"),
        ({"kcore": -3}, "kcore: must be >= 1"),
        ({"seed": 2**70}, "seed: must lie in"),
        ({"epochs": 0}, "epochs: must be >= 1"),
        ({"hidden_size": 1.5}, "hidden_size: expected an int"),
        ({"tau": float("inf")}, "tau: expected a float \\(finite\\)"),
        ({"c": 50}, "c: 50 keeps all 26 frequency bins .* c must be at most 49"),
        ({"c": 11, "max_len": 10}, "the low-pass filter would do nothing"),
    ],
)
def test_every_setting_is_checked_before_any_work(settings, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**settings)
    RunConfig(c=49)  # the widest filter that still cuts a bin of a 50-long window


def test_kcore_is_refused_where_it_would_be_ignored(tmp_path):
    from bsarec.data.registry import resolve_dataset
    from bsarec.data.synthetic import generate_synthetic
    from bsarec.errors import DataError

    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)
    data.save(tmp_path / "prepared")
    with pytest.raises(DataError, match="--kcore 5 applies to raw logs only, and this is a prepared dataset"):
        resolve_dataset(str(tmp_path / "prepared"), kcore=5)
    assert resolve_dataset(str(tmp_path / "prepared"), kcore=1).num_users == 40


def test_a_settings_file_with_unknown_names_is_named(tmp_path):
    (tmp_path / "preset.json").write_text('{"learning_rate": 0.1}')
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{tmp_path / 'preset.json'}: expected settings of bsarec train; unknown: ['learning_rate']"
        ),
    ):
        resolve_config("bsarec", "synthetic", "synthetic", str(tmp_path / "preset.json"))


@pytest.mark.parametrize(
    ("model", "setting"),
    [
        ("tvrec", {"c": 9}),
        ("tvrec", {"alpha": 0.5}),
        ("tvrec", {"num_heads": 4}),
        ("caser", {"num_layers": 3}),
        ("sasrec", {"mask_ratio": 0.4}),
        ("gru4rec", {"attn_dropout": 0.3}),
    ],
)
def test_a_setting_the_model_does_not_use_is_refused(model, setting):
    name = next(iter(setting))
    with pytest.raises(ConfigError, match=rf"{name}: {model} does not use it"):
        RunConfig(model=model, **setting)
    assert RunConfig(model="wearec", alpha=0.5, num_heads=4).alpha == 0.5  # WEARec's own settings


def test_max_len_has_an_upper_bound():
    with pytest.raises(ConfigError, match="max_len: at most 2048"):
        RunConfig(max_len=100_000)


def test_a_preset_file_for_another_model_is_refused_and_names_the_default(tmp_path):
    preset = tmp_path / "mine.json"
    preset.write_text('{"settings": {"model": "sasrec", "lr": 0.002}}')
    with pytest.raises(ConfigError, match="its settings are for 'sasrec', not 'bsarec'"):
        resolve_config("bsarec", "LastFM", "LastFM", str(preset))
    assert resolve_config(None, "LastFM", "LastFM", str(preset)).model == "sasrec"  # no -m: the file's model
    assert resolve_config("sasrec", "LastFM", "LastFM", str(preset)).lr == 0.002
    preset.write_bytes("\ufeff".encode() + b'{"lr": 0.003}')  # a byte order mark, as editors write it
    assert resolve_config(None, "LastFM", "LastFM", str(preset)).lr == 0.003


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    monkeypatch.setattr("bsarec.config.cpu", lambda: {"model": "x", "bf16": True})
    assert RunConfig(precision="auto").precision == "bf16"
    monkeypatch.setattr("bsarec.config.cpu", lambda: {"model": "x", "bf16": False})
    config = RunConfig(precision="auto")
    assert config.precision == "fp32" and config.to_dict()["precision"] == "fp32"  # recorded as resolved
