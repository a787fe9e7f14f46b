"""`bsarec tune`: Optuna search on validation NDCG@20, never on test.

A study lives in an SQLite file (default RUNS/study.db): stop it at any time and run the same command again to
continue (it runs trials until the study holds --trials finished or pruned ones); several processes may share
one study. TPE sampling (seeded) and median pruning on the validation metric reported after every epoch. Each
trial is a normal training run (early stopping on validation) whose test targets are never evaluated.
Afterwards: the best trial's settings become a preset file for `bsarec train --preset FILE`, plus a trials
table (CSV and Markdown) and figures: optimisation history, parameter importance, and for BSARec an
alpha x c heatmap of the best validation NDCG@20 (the paper's sensitivity figure). The final test run is
yours to make, once, with the preset.

Search spaces: the paper's grid for BSARec (alpha 0.1..0.9, c in {1, 3, 5, 7, 9}, lr in {5e-4, 1e-3}, heads in
{1, 2, 4}) and a small space per baseline; a JSON file replaces them:
  {"alpha": {"low": 0.1, "high": 0.9, "step": 0.1}, "c": {"choices": [1, 3, 5]}, "lr": {"low": 1e-4, "high": 1e-2, "log": true}}
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from bsarec.analysis.figures import pyplot, save_figure
from bsarec.api import SequentialRecommender
from bsarec.config import MODEL_SETTINGS, RunConfig, resolve_config
from bsarec.data.registry import dataset_name, resolve_dataset
from bsarec.errors import ConfigError, NonFiniteError
from bsarec.extras import require
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.models import model_parameters
from bsarec.runs import fit_packed, read_run_item_features
from bsarec.training.packed import PACKABLE

log = logging.getLogger("bsarec")
HEADS = {"choices": [1, 2, 4]}
LR = {"choices": [0.0005, 0.001]}
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "bsarec": {
        "alpha": {"low": 0.1, "high": 0.9, "step": 0.1},
        "c": {"choices": [1, 3, 5, 7, 9]},
        "lr": LR,
        "num_heads": HEADS,
    },
    "sasrec": {"lr": LR, "num_heads": HEADS, "hidden_dropout": {"choices": [0.2, 0.5]}},
    "bert4rec": {"lr": LR, "num_heads": HEADS, "mask_ratio": {"choices": [0.1, 0.2, 0.4]}},
    "duorec": {
        "lr": LR,
        "num_heads": HEADS,
        "lmd_sem": {"choices": [0.05, 0.1, 0.2]},
        "tau": {"choices": [0.5, 1.0]},
    },
    "fearec": {
        "lr": LR,
        "num_heads": HEADS,
        "lmd_sem": {"choices": [0.05, 0.1, 0.2]},
        "global_ratio": {"choices": [0.4, 0.6, 0.8]},
    },
    "fmlprec": {"lr": LR, "hidden_dropout": {"choices": [0.2, 0.5]}},
    "gru4rec": {
        "lr": LR,
        "gru_hidden_size": {"choices": [64, 128]},
        "hidden_dropout": {"choices": [0.2, 0.3, 0.5]},
    },
    "caser": {"lr": LR, "nh": {"choices": [4, 8, 16]}, "nv": {"choices": [2, 4, 8]}},
    # TV-Rec and WEARec: the ranges of their published settings; WEARec's alpha and heads as its authors' grid
    "tvrec": {
        "lr": LR,
        "num_basis": {"choices": [8, 16, 32]},
        "hidden_dropout": {"choices": [0.1, 0.3, 0.5]},
        "basis_reg_weight": {"choices": [0.0, 0.001, 0.1]},
    },
    "wearec": {
        "lr": LR,
        "alpha": {"low": 0.0, "high": 1.0, "step": 0.1},
        "num_heads": {"choices": [1, 2, 4, 8]},
    },
}


def load_space(model: str, path: str | Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return SPACES[model]
    try:
        space = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the search space ({exc})") from None
    if not isinstance(space, dict) or not space:
        raise ConfigError(f'{path}: expected a JSON object of settings to search, e.g. {{"lr": {LR}}}')
    known = {f for f in RunConfig.__dataclass_fields__}
    for name, spec in space.items():
        if name not in known:
            raise ConfigError(f"{path}: {name!r} is not a setting")
        if not isinstance(spec, dict) or not ("choices" in spec or {"low", "high"} <= set(spec)):
            raise ConfigError(f"{path}: {name!r} needs {{'choices': [...]}} or {{'low': .., 'high': ..}}")
    return space


def check_space(space: dict[str, dict[str, Any]], base: RunConfig, source: str) -> None:
    """The whole search space, before any trial: each range well formed (low < high, a log range above 0, a
    step that fits), each list of choices non-empty, and every value it can take (choices, both ends of a
    range) a valid setting of the run it is tried in."""
    for name, spec in space.items():
        where = f"{source}: {name!r}"
        if name in MODEL_SETTINGS and name not in model_parameters(base.model):
            raise ConfigError(
                f"{where}: {name}: {base.model} does not use it; searching it would change nothing"
            )
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{where}: 'choices' must be a non-empty list")
            values = spec["choices"]
        else:
            low, high = spec["low"], spec["high"]
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            if not numbers or not low < high:
                raise ConfigError(f"{where}: a range needs numbers with low < high, got {low!r} .. {high!r}")
            if spec.get("log") and low <= 0:
                raise ConfigError(f"{where}: a log range must start above 0, got low {low!r}")
            step = spec.get("step")
            if step is not None and (
                spec.get("log") or not isinstance(step, (int, float)) or not 0 < step <= high - low
            ):
                raise ConfigError(
                    f"{where}: step {step!r} must be a number in (0, high - low] and not with log"
                )
            values = [low, high]
        for value in values:
            try:
                base.updated(**{name: value})
            except ConfigError as error:
                raise ConfigError(f"{where}: the value {value!r} is not a valid setting ({error})") from None


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    values = {}
    for name, spec in space.items():
        if "choices" in spec:
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1))
        else:
            values[name] = trial.suggest_float(
                name, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False)
            )
            if spec.get("step"):
                values[name] = round(values[name], 10)
    return values


def tune(
    model: str,
    dataset: str,
    data_dir: str | None,
    output: Path,
    trials: int,
    space_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    preset: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 42,
    progress: bool = False,
    pack: int = 1,
) -> dict[str, Any]:
    optuna = require("optuna", "analysis", "bsarec tune")
    name = dataset_name(dataset)
    base = resolve_config(model, dataset, name, preset, overrides, seed=seed, data_dir=data_dir)
    space = load_space(model, space_file)
    check_space(space, base, space_file or f"the default space of {model}")
    if pack > 1 and not set(space) <= set(PACKABLE):
        raise ConfigError(
            f"--pack: trials train together only when they differ in {', '.join(PACKABLE)}; the space also "
            f"varies {', '.join(sorted(set(space) - set(PACKABLE)))} (give --space FILE without them)"
        )
    data = resolve_dataset(dataset, data_dir, kcore=base.kcore)
    features = read_run_item_features(base, data)  # read once, for every trial
    output.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(output / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=study_name or f"{model}-{name}",
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5),
    )

    def objective(trial) -> float:
        values = suggest(trial, space)
        config = base.updated(**values)
        trial.set_user_attr("settings", values)

        def report(epoch: int, valid: dict[str, float]) -> None:
            trial.report(valid[config.monitor], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        rec = SequentialRecommender(config=config).fit(
            data,
            features,
            run_dir=output / "trials" / f"trial{trial.number:04d}",
            progress=progress,
            evaluate_test=False,
            on_epoch=report,
        )
        trial.set_user_attr("best_epoch", rec.metrics["best_epoch"])
        return rec.metrics["valid"][config.monitor]

    done = [
        t
        for t in study.trials
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    remaining = max(0, trials - len(done))
    log.info("study %s: %d trials finished, %d to run", study.study_name, len(done), remaining)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if remaining and pack > 1:
        _optimize_packed(study, optuna, base, space, data, output, remaining, pack)
    elif remaining:
        # a trial whose settings make training diverge fails (recorded as such) instead of ending the study
        study.optimize(objective, n_trials=remaining, catch=(NonFiniteError,))
    return write_outputs(study, base, space, output)


def _optimize_packed(
    study, optuna, base: RunConfig, space, data, output: Path, remaining: int, pack: int
) -> None:
    """Trials asked `pack` at a time and trained together (training/packed.py)."""
    while remaining > 0:
        trials = [study.ask() for _ in range(min(pack, remaining))]
        _train_trial_pack(study, optuna, trials, base, space, data, output)
        remaining -= len(trials)


def _train_trial_pack(study, optuna, trials: list, base: RunConfig, space, data, output: Path) -> None:
    """One pack of trials: each reported and pruned after every epoch as alone; a pack that diverges fails
    all its trials."""
    configs = []
    for trial in trials:
        values = suggest(trial, space)
        trial.set_user_attr("settings", values)
        configs.append(base.updated(**values))
    pruned: set[int] = set()

    def report(index: int, record: dict[str, Any]) -> bool:
        trial = trials[index]
        trial.report(record[f"valid_{base.monitor}"], record["epoch"])
        if trial.should_prune():
            pruned.add(index)
        return index in pruned

    run_dirs = [output / "trials" / f"trial{t.number:04d}" for t in trials]
    try:
        recs = fit_packed(configs, data, run_dirs, evaluate_test=False, on_epoch=report)
    except NonFiniteError as error:
        log.warning("a pack diverged (%s); its trials fail", error)
        for trial in trials:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    for index, (trial, rec) in enumerate(zip(trials, recs, strict=True)):
        trial.set_user_attr("best_epoch", rec.metrics["best_epoch"])
        if index in pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, rec.metrics["valid"][base.monitor])


def write_outputs(study, base: RunConfig, space: dict[str, Any], output: Path) -> dict[str, Any]:
    optuna = require("optuna", "analysis", "bsarec tune")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [
        {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value,
            **t.params,
            "best_epoch": t.user_attrs.get("best_epoch"),
        }
        for t in study.trials
    ]
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(output / "trials.csv", buffer.getvalue())
    summary: dict[str, Any] = {
        "study": study.study_name,
        "trials": len(study.trials),
        "complete": len(complete),
    }
    if complete:
        best = study.best_trial
        settings = {
            **{k: v for k, v in base.to_dict().items() if k in space or k in ("lr", "loss")},
            **best.params,
        }
        preset = {
            "about": f"best of {len(complete)} trials of study {study.study_name} on validation {base.monitor}",
            "validation": best.value,
            "settings": settings,
        }
        atomic_write_json(output / "best_preset.json", preset)
        summary |= {
            "best_value": best.value,
            "best_params": best.params,
            "preset": str(output / "best_preset.json"),
        }
        summary["figures"] = [str(p) for p in plot(study, complete, base, output)]
    atomic_write_json(output / "summary.json", summary)
    lines = ["| " + " | ".join(rows[0]) + " |", "|---" * len(rows[0]) + "|"] if rows else []
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()
            )
            + " |"
        )
    atomic_write_text(output / "trials.md", "\n".join(lines) + "\n")
    return summary


def plot(study, complete, base: RunConfig, output: Path) -> list[Path]:
    optuna = require("optuna", "analysis", "bsarec tune")
    plt = pyplot()

    written = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    values = [t.value for t in complete]
    ax.plot([t.number for t in complete], values, "o", label="trial")
    ax.plot([t.number for t in complete], np.maximum.accumulate(values), "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {base.monitor}")
    ax.legend()
    written.append(save_figure(fig, output / "history.png"))
    if len(complete) >= 2 and len(complete[0].params) >= 2:
        try:
            importance = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):  # too few distinct values to attribute anything
            importance = {}
        if importance:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ax.barh(list(importance)[::-1], list(importance.values())[::-1])
            ax.set_xlabel("importance (fANOVA)")
            written.append(save_figure(fig, output / "importance.png"))
    if base.model == "bsarec" and all({"alpha", "c"} <= set(t.params) for t in complete):
        alphas = sorted({t.params["alpha"] for t in complete})
        cs = sorted({t.params["c"] for t in complete})
        grid = np.full((len(cs), len(alphas)), np.nan)
        for t in complete:
            i, j = cs.index(t.params["c"]), alphas.index(t.params["alpha"])
            grid[i, j] = np.nanmax([grid[i, j], t.value])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(len(alphas)), [f"{a:.1f}" for a in alphas])
        ax.set_yticks(range(len(cs)), [str(c) for c in cs])
        ax.set_xlabel("alpha")
        ax.set_ylabel("c")
        fig.colorbar(image, label=f"best validation {base.monitor}")
        written.append(save_figure(fig, output / "alpha_c_heatmap.png"))
    return written
