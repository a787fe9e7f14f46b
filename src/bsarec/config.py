"""The run configuration: defaults (the reference code's), presets, and `--set key=value` overrides.

Precedence, lowest first: defaults < preset < --set < explicit CLI flags (--seed, --epochs).
The resolved config is written to every run directory and is enough to re-run it. A model hyperparameter's
default is the one its constructor declares (`bsarec.models.hyperparameter_default`); the settings of the
training loop and the protocol have their defaults here.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from bsarec.data.split import TRAIN_SAMPLES
from bsarec.environment import cpu
from bsarec.errors import ConfigError
from bsarec.models import MODELS, model_parameters
from bsarec.models import hyperparameter_default as model_default
from bsarec.models.base import check_loss
from bsarec.tracking import tracker_names

HISTORY_MASKS = ("exclude", "zero")
CANDIDATES = ("full", "sampled-uniform", "sampled-popularity")
SOFTMAX_SAMPLERS = ("uniform", "popularity")
PADDINGS = ("zeros", "cyclic", "reflect", "symmetric")
PRECISIONS = ("fp32", "bf16", "tf32", "auto")
DEVICES = ("cpu", "cuda", "auto")
MAX_LEN_LIMIT = 2048
# the hyperparameters some model's constructor takes: given to another model, they are refused
MODEL_SETTINGS = {name for model in MODELS for name in model_parameters(model)} - {"loss"}
MONITORS = tuple(f"{m}@{k}" for k in (5, 10, 20) for m in ("HR", "NDCG")) + ("MRR",)


@dataclass
class RunConfig:
    model: str = "bsarec"
    dataset: str = "synthetic"
    data_dir: str | None = None
    kcore: int | None = None  # raw logs only; None = 5 for raw logs, off for benchmark files
    preset: str | None = None
    seed: int = 42
    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.001
    weight_decay: float = 0.0
    patience: int = 10
    monitor: str = "NDCG@20"
    max_len: int = model_default("max_len")
    hidden_size: int = model_default("hidden_size")
    num_layers: int = model_default("num_layers")
    num_heads: int = model_default("num_heads")
    hidden_dropout: float = model_default("hidden_dropout")
    attn_dropout: float = model_default("attn_dropout")
    # BSARec, WEARec: weight of the frequency branch; None: the model's own default (BSARec 0.9, WEARec 0.3)
    alpha: float | None = None
    c: int = model_default("c")  # BSARec: low-pass cut-off, keeps c//2+1 rfft bins
    loss: str | None = None  # None: the model's paper objective (the first of its `losses`)
    # large catalogues: sampled softmax in place of the full softmax of the "ce" loss (0 = full softmax)
    softmax_negatives: int = 0  # items drawn per batch, shared by its samples, logQ-corrected
    softmax_sampler: str = "uniform"  # "uniform" or "popularity" (training-target frequency + 1)
    # baselines (docs/baselines.md; the reference code's defaults)
    nh: int = model_default("nh")  # Caser: horizontal filters per height
    nv: int = model_default("nv")  # Caser: vertical filters
    reg_weight: float = model_default("reg_weight")  # Caser: L2 weight
    gru_hidden_size: int = model_default("gru_hidden_size")  # GRU4Rec
    mask_ratio: float = model_default("mask_ratio")  # BERT4Rec: masked share of the slots
    tau: float = model_default("tau")  # DuoRec, FEARec: InfoNCE temperature
    lmd_sem: float = model_default("lmd_sem")  # DuoRec, FEARec: weight of the same-target InfoNCE term
    sim: str = model_default("sim")  # DuoRec, FEARec: "dot" or "cos"
    global_ratio: float = model_default("global_ratio")  # FEARec: band width
    spatial_ratio: float = model_default("spatial_ratio")  # FEARec: weight of the time-domain attention
    topk_factor: int = model_default("topk_factor")  # FEARec: top-k delays = int(topk_factor * ln N)
    freq_loss_weight: float = model_default(
        "freq_loss_weight"
    )  # FEARec: weight of the frequency-domain regulariser
    num_basis: int = model_default("num_basis")  # TV-Rec: size M of the filter basis
    basis_reg_weight: float = model_default("basis_reg_weight")  # TV-Rec: weight of the basis regulariser
    # item side information (docs/item_features.md): files, comma-separated, or "attributes" (a registered
    # dataset's S3-Rec file); items as their features alone; the share of items whose id part each training step
    # leaves out; the share of items withheld from training (seeded), whose test metrics are then reported by group
    item_features: str | None = None
    features_only: bool = False
    id_dropout: float = 0.0
    cold_items: float = 0.0
    # the protocol switchboard (the paper's protocol is the default)
    history_mask: str = "exclude"  # "exclude" (default) or "zero" (the reference code's 0-score masking)
    candidates: str = "full"  # "full" ranking or the target + eval_negatives sampled negatives
    eval_negatives: int = 99
    padding: str = "zeros"  # "zeros" (the paper), "cyclic", "reflect", "symmetric"
    # "prefixes" (BSARec's protocol: the empty input too) or "nonempty" (TV-Rec's); None: the model's own
    train_samples: str | None = None
    eval_batch_size: int = 256
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when available)
    # the training step's arithmetic: "fp32", "bf16" (autocast, CPU and CUDA) or "tf32" (CUDA matmuls); "auto"
    # is bf16 where the device computes it in hardware and fp32 elsewhere, resolved when the config is made
    # (config.json records which)
    precision: str = "fp32"
    # torch.compile the training step's forward and backward (on CUDA as CUDA graphs: mode "reduce-overhead")
    compile: bool = False
    threads: int | None = None
    # CPU: flush denormal floats (|x| < 2**-126) to zero. Caser's L2 term drives its filters toward zero and
    # their products into the denormal range, where its steps ran 9x slower (docs/results.md)
    flush_denormal: bool = True
    checkpoint_steps: int | None = None  # also checkpoint every N batches (always after every epoch)
    keep_checkpoints: int = 2
    # experiment tracking (docs/tracking.md): "tensorboard", "mlflow" or both, comma-separated; MLflow's
    # tracking URI and experiment
    track: str | None = None
    track_uri: str | None = None
    track_experiment: str | None = None

    def __post_init__(self) -> None:
        if self.precision == "auto":
            self.precision = fast_precision(self.device)
        self.validate()

    def validate(self) -> None:
        """Every setting, before any work: its type, its range, and what it means with the others."""
        self._check_types()
        if self.model not in MODELS:
            raise ConfigError(f"model: unknown {self.model!r}; choose from {', '.join(MODELS)}")
        for name, choices in (
            ("history_mask", HISTORY_MASKS),
            ("candidates", CANDIDATES),
            ("padding", PADDINGS),
            ("device", DEVICES),
            ("monitor", MONITORS),
            ("sim", ("dot", "cos")),
            ("softmax_sampler", SOFTMAX_SAMPLERS),
            ("train_samples", (*TRAIN_SAMPLES, None)),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}: expected one of {choices}, got {getattr(self, name)!r}")
        for name in (
            "epochs",
            "batch_size",
            "max_len",
            "hidden_size",
            "num_layers",
            "num_heads",
            "patience",
            "eval_negatives",
            "nh",
            "nv",
            "gru_hidden_size",
            "topk_factor",
            "num_basis",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("eval_batch_size", "keep_checkpoints", "kcore", "threads", "checkpoint_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_len > MAX_LEN_LIMIT:
            raise ConfigError(
                f"max_len: at most {MAX_LEN_LIMIT} (a batch's attention maps grow with its square), got {self.max_len}"
            )
        self._check_model_settings()
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed: must lie in [0, 2**63), got {self.seed}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        for name in ("weight_decay", "reg_weight", "lmd_sem", "freq_loss_weight", "basis_reg_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"num_heads: {self.num_heads} does not divide hidden_size {self.hidden_size}")
        for name in ("hidden_dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(
                    f"{name}: must lie in [0, 1) (1 would drop everything), got {getattr(self, name)}"
                )
        for name in (
            "alpha",
            "mask_ratio",
            "global_ratio",
            "spatial_ratio",
        ):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: must lie in [0, 1], got {getattr(self, name)}")
        if self.c < 1:
            raise ConfigError(f"c: must be >= 1, got {self.c}")
        if self.model == "bsarec" and self.c // 2 + 1 >= self.max_len // 2 + 1:
            raise ConfigError(
                f"c: {self.c} keeps all {self.max_len // 2 + 1} frequency bins of a window of max_len {self.max_len}, "
                f"so the low-pass filter would do nothing; c must be at most {2 * (self.max_len // 2) - 1}"
            )
        if self.softmax_negatives < 0:
            raise ConfigError(
                f"softmax_negatives: must be >= 0 (0 = full softmax), got {self.softmax_negatives}"
            )
        if self.tau <= 0:
            raise ConfigError(f"tau: must be > 0, got {self.tau}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ConfigError(f"id_dropout: a share of the items in [0, 1), got {self.id_dropout}")
        if self.id_dropout and self.features_only:
            raise ConfigError("id_dropout: with features_only no item has an id part to leave out")
        if not 0.0 <= self.cold_items < 1.0:
            raise ConfigError(f"cold_items: a share of the items in [0, 1), got {self.cold_items}")
        if self.track is not None:
            tracker_names(self.track)
        if self.item_features is not None and not self.item_features.strip(" ,"):
            raise ConfigError("item_features: expected files (comma-separated) or 'attributes', got nothing")
        if not isinstance(self.flush_denormal, bool):
            raise ConfigError(f"flush_denormal: expected true or false, got {self.flush_denormal!r}")
        if self.model == "bert4rec" and int(self.max_len * self.mask_ratio) < 1:
            raise ConfigError(f"mask_ratio: {self.mask_ratio} x max_len {self.max_len} masks no slot")
        check_loss(MODELS[self.model], self.resolved_loss)
        if self.softmax_negatives and self.resolved_loss != "ce":
            raise ConfigError(
                f"softmax_negatives: sampled softmax replaces the 'ce' loss; {self.model} trains with"
                f" {self.resolved_loss!r}"
            )

    def _check_model_settings(self) -> None:
        """A model hyperparameter that the chosen model does not take must keep its default: a value given
        for it would be recorded in config.json without changing anything."""
        own = set(model_parameters(self.model))
        defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
        for name in sorted(MODEL_SETTINGS - own):
            if getattr(self, name) != defaults[name]:
                raise ConfigError(
                    f"{name}: {self.model} does not use it (its settings: {', '.join(sorted(own - {'loss'}))}); "
                    f"leave it out"
                )

    def _check_types(self) -> None:
        for name, (base, optional) in _field_kinds().items():
            value = getattr(self, name)
            if value is None:
                if not optional:
                    raise ConfigError(f"{name}: expected {base}, got None")
                continue
            if base == "bool":
                fits = isinstance(value, bool)
            elif base == "int":
                fits = isinstance(value, int) and not isinstance(value, bool)
            elif base == "float":
                fits = (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                )
            else:
                fits = isinstance(value, str)
            if not fits:
                raise ConfigError(
                    f"{name}: expected a{'' if base[0] not in 'i' else 'n'} {base}"
                    f"{' (finite)' if base == 'float' else ''}, got {value!r}"
                )

    def torch_device(self) -> str:
        if self.device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: cuda was asked for, but torch sees no CUDA device")
        else:
            device = self.device
        if self.precision == "tf32" and device == "cpu":
            raise ConfigError(
                "precision: tf32 is a mode of CUDA matrix products; on the CPU use fp32 or bf16"
            )
        return device

    @property
    def resolved_loss(self) -> str:
        return self.loss or MODELS[self.model].losses[0]

    def model_own_defaults(self) -> dict[str, Any]:
        """What the chosen model supplies for the settings left at None: its paper's objective, its training
        samples and (BSARec, WEARec) its alpha."""
        cls = MODELS[self.model]
        own = {"loss": cls.losses[0], "train_samples": cls.train_samples}
        if "alpha" in inspect.signature(cls).parameters:
            own["alpha"] = inspect.signature(cls).parameters["alpha"].default
        return own

    def to_dict(self) -> dict[str, Any]:
        """Every setting, with the model's own defaults filled in (what config.json records)."""
        values = dataclasses.asdict(self)
        own = self.model_own_defaults()
        return {**values, **{k: v for k, v in own.items() if values[k] is None}}

    def resolved(self, name: str) -> Any:
        return self.to_dict()[name]

    def model_settings(self) -> dict[str, Any]:
        """Constructor arguments of the chosen model: the settings whose names its constructor takes."""
        values = self.to_dict()
        return {name: values[name] for name in model_parameters(self.model)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def updated(self, **changes: Any) -> RunConfig:
        return RunConfig.from_dict({**dataclasses.asdict(self), **changes})


def fast_precision(device: str) -> str:
    """The arithmetic `precision="auto"` gives: bf16 on a CPU with bf16 instructions (AVX512-BF16 or AMX,
    where a BSARec step on Beauty takes 0.61 of an fp32 one) or a CUDA device that computes bf16; fp32
    elsewhere (a CPU without them emulates bf16 several times slower: docs/scaling.md)."""
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu()["bf16"] else "fp32"


def _field_kinds() -> dict[str, tuple[str, bool]]:
    """Each setting's base type ("int", "float", "str" or "bool") and whether it may be None."""
    return {
        f.name: (str(f.type).split(" |")[0], "None" in str(f.type)) for f in dataclasses.fields(RunConfig)
    }


def parse_value(key: str, text: str) -> Any:
    """Cast `--set key=value` text to the field's type."""
    kinds = _field_kinds()
    if key not in kinds:
        raise ConfigError(f"--set {key}: unknown setting; known: {sorted(kinds)}")
    kind, optional = kinds[key]
    if text.lower() in ("none", "null") and optional:
        return None
    if kind == "bool":
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"--set {key}={text}: expected true or false")
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"--set {key}={text}: expected {kind}") from None
    return text


# settings that change how a run is carried out, not what it computes: a resumed run (and a re-run benchmark cell)
# may change them
RUNTIME_SETTINGS = (
    "threads",
    "device",
    "data_dir",
    "eval_batch_size",
    "checkpoint_steps",
    "keep_checkpoints",
    "flush_denormal",  # touches only values below 2**-126: like the thread count, rounding, not the computation
    "compile",  # the same computation, fused into other kernels: rounding, not semantics
    "track",  # where the numbers are reported, not what they are
    "track_uri",
    "track_experiment",
)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value")
        key, text = pair.split("=", 1)
        values[key.strip()] = parse_value(key.strip(), text.strip())
    return values


BUILT_IN_PRESETS = ("paper", "best")  # presets/NAME.json: settings per model and dataset


def load_built_in_preset(name: str = "paper") -> dict[str, Any]:
    return json.loads(resources.files("bsarec").joinpath(f"presets/{name}.json").read_text())


def preset_values(preset: str, model: str | None, dataset_name: str) -> dict[str, Any]:
    """Settings of a preset: a built-in one, per model and dataset ("paper": the papers' settings; "best":
    ours, chosen on validation, docs/results.md), or a JSON file of flat key-value settings.

    With no model, "best" gives the dataset's best recommender, its model included (the "recommender" table
    of presets/best.json: every model searched, not BSARec's settings alone), and the other built-in presets
    BSARec's settings."""
    if preset in BUILT_IN_PRESETS:
        built_in = load_built_in_preset(preset)
        recommender = _for_dataset(built_in.get("recommender", {}), dataset_name)
        if model is None and recommender is not None:
            return recommender
        if model is None and "recommender" in built_in:  # say so: the user asked for the best of every model
            logging.getLogger("bsarec").info(
                "--preset %s: no recommender has been chosen for %s yet (docs/results.md); BSARec's settings",
                preset,
                dataset_name,
            )
        table = built_in.get(model or "bsarec", {})
        values = _for_dataset(table, dataset_name)
        if values is None and recommender is not None and recommender["model"] == model:
            values = recommender
        if values is None:
            raise ConfigError(
                f"--preset {preset}: no {preset} settings for {model or 'bsarec'} on {dataset_name!r}; "
                f"known: {sorted(table) or 'none for this model'}"
            )
        return values
    path = Path(preset)
    if not path.is_file():
        raise ConfigError(
            f"--preset {preset}: expected a built-in preset ({', '.join(BUILT_IN_PRESETS)}) or a JSON file of settings"
        )
    try:
        values = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object of settings")
    settings = values.get("settings", values)
    unknown = (
        sorted(set(settings) - {f.name for f in dataclasses.fields(RunConfig)})
        if isinstance(settings, dict)
        else []
    )
    if not isinstance(settings, dict) or unknown:
        raise ConfigError(f"{path}: expected settings of bsarec train; unknown: {unknown or settings!r}")
    return settings


def defaults_stand_in(model: str, dataset_name: str, preset: str = "paper") -> bool:
    """Whether a built-in preset gives `model` its "*" defaults on this dataset although it has settings of
    its own for others: the paper preset's TV-Rec and WEARec on datasets their authors published nothing for.
    (The seven baselines have one "*" entry everywhere, as in the BSARec paper: never a stand-in.)"""
    table = load_built_in_preset(preset).get(model, {})
    own = {name.lower() for name in table if name != "*"}
    return "*" in table and bool(own) and dataset_name.lower() not in own


def _for_dataset(table: dict[str, Any], dataset_name: str) -> dict[str, Any] | None:
    """A preset table's settings for a dataset (its name in any case), else its "*" entry, else None."""
    for name, values in table.items():
        if name.lower() == dataset_name.lower():
            return dict(values)
    return dict(table["*"]) if "*" in table else None


def resolve_config(
    model: str | None,
    dataset: str,
    dataset_name: str,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    **explicit: Any,
) -> RunConfig:
    """The run config of `model` (None: the preset's model, i.e. a preset file's or the best recommender's,
    else bsarec) with the precedence of the module docstring. A preset written for another model than the one
    named is refused."""
    from_preset: dict[str, Any] = {}
    if preset:
        from_preset = preset_values(preset, model, dataset_name)
        if model is not None and from_preset.get("model", model) != model:
            raise ConfigError(
                f"--preset {preset}: its settings are for {from_preset['model']!r}, not {model!r}; "
                f"pass --model {from_preset['model']} or another preset"
            )
    values: dict[str, Any] = {"dataset": dataset, "preset": preset, **from_preset}
    values["model"] = model or from_preset.get("model") or "bsarec"
    values.update(overrides or {})
    values.update({k: v for k, v in explicit.items() if v is not None})
    return RunConfig.from_dict(values)
