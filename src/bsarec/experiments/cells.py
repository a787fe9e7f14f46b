"""A benchmark grid's cells: one (model, dataset, seed) each, its run directory and its settings.

Every cell is a run directory RUNS/DATASET/MODEL/PROTOCOL/seedSEED, where PROTOCOL is "paper" or the grid's
--set overrides (runtime settings such as threads or device do not change what a cell is)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsarec.config import MODEL_SETTINGS, RUNTIME_SETTINGS, RunConfig, resolve_config
from bsarec.data.registry import dataset_name
from bsarec.models import model_parameters


@dataclass(frozen=True)
class Cell:
    model: str
    dataset: str
    seed: int


def protocol_tag(overrides: dict[str, Any], preset: str | None = "paper", precision: str = "fp32") -> str:
    """The run-directory name of a grid's preset and overrides: "paper" for the paper preset alone, else the
    preset's name (a file's stem; "defaults" for none) before the overrides. Runtime settings do not change
    what a cell is. The cells' resolved `precision` is named when it is not fp32 (the papers' arithmetic),
    whether it was asked for or is the machine's default: a bf16 cell is never taken for an fp32 one."""
    kept = {k: v for k, v in overrides.items() if k not in RUNTIME_SETTINGS and k != "precision"}
    if precision != "fp32":
        kept["precision"] = precision
    parts = [] if preset == "paper" else [Path(preset).stem if preset else "defaults"]
    parts += [f"{k}={v}" for k, v in sorted(kept.items())]
    return ",".join(parts) or "paper"


def run_dir_of(runs: Path, cell: Cell, tag: str) -> Path:
    return runs / dataset_name(cell.dataset) / cell.model / tag / f"seed{cell.seed}"


def cell_key(run_dir: str | Path) -> str:
    """A cell's name in a results file, whatever --runs was: DATASET/MODEL/PROTOCOL/seedSEED."""
    return "/".join(Path(run_dir).parts[-4:])


def cell_config(cell: Cell, preset: str | None, overrides: dict[str, Any], **explicit: Any) -> RunConfig:
    return resolve_config(cell.model, cell.dataset, dataset_name(cell.dataset), preset, overrides, **explicit)


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that make a run what it is. A config.json written before a setting existed gets that
    setting's default, which is what the run used; one that kept other models' hyperparameters (as older
    versions wrote them) loses them."""
    own = set(model_parameters(config.get("model", "bsarec")))
    # other models' hyperparameters (max_len also shapes the samples, so it always counts)
    others = MODEL_SETTINGS - own - {"max_len"}
    complete = RunConfig.from_dict({k: v for k, v in config.items() if k not in others}).to_dict()
    return {k: v for k, v in complete.items() if k not in RUNTIME_SETTINGS and k not in others}
