"""Experiment tracking (`--track tensorboard|mlflow`, docs/tracking.md): a run's resolved settings, its
per-epoch training loss, validation metrics, samples/s and learning rate, its final test metrics, and (MLflow)
its model files, written through each tracker's official client. Nothing here imports a tracker unless asked.

- TensorBoard: `torch.utils.tensorboard.SummaryWriter` into RUN_DIR/tensorboard (`tensorboard --logdir runs`
  shows every run below it, a grid's cells side by side).
- MLflow: the `mlflow` client, to `track_uri` (a server, `sqlite:///path.db`, ...; default
  `sqlite:///mlflow.db` in the working directory, artifacts in `mlartifacts/` beside it), in the experiment
  `track_experiment` (default "bsarec"; a grid uses one experiment per grid, a tuning study its study's name).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from bsarec.errors import ConfigError
from bsarec.extras import require

log = logging.getLogger("bsarec")
TRACKERS = ("tensorboard", "mlflow")
TENSORBOARD_DIR = "tensorboard"
MODEL_FILES = ("config.json", "identity.json", "metrics.json", "model.safetensors", "history.jsonl")


def tracker_names(track: str | None) -> list[str]:
    """The trackers of the `track` setting ("tensorboard", "mlflow" or both, comma-separated), checked."""
    names = [name.strip() for name in (track or "").split(",") if name.strip()]
    unknown = sorted(set(names) - set(TRACKERS))
    if unknown:
        raise ConfigError(f"track: unknown tracker {unknown[0]!r}; choose from {', '.join(TRACKERS)}")
    return list(dict.fromkeys(names))


class TensorBoardTracker:
    def __init__(self, run_dir: Path, name: str):
        tensorboard = require("torch.utils.tensorboard", "track", "--track tensorboard")
        self.writer = tensorboard.SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR))
        self.name = name

    def start(self, settings: dict[str, Any]) -> None:
        self.writer.add_text("config", "```\n" + json.dumps(settings, indent=1, default=str) + "\n```", 0)

    def epoch(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, metrics: dict[str, float], run_dir: Path | None, failed: bool) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()


class MlflowTracker:
    def __init__(self, uri: str | None, experiment: str, name: str):
        self.mlflow = require("mlflow", "track", "--track mlflow")
        uri = uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
        self.mlflow.set_tracking_uri(uri)
        if self.mlflow.get_experiment_by_name(experiment) is None:
            artifacts = None
            if uri.startswith("sqlite:///"):  # not the working directory's ./mlruns, MLflow's default
                artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
            with contextlib.suppress(
                self.mlflow.exceptions.MlflowException
            ):  # another process made it meanwhile
                self.mlflow.create_experiment(experiment, artifact_location=artifacts)
        self.mlflow.set_experiment(experiment)
        self.run = self.mlflow.start_run(run_name=name)

    def start(self, settings: dict[str, Any]) -> None:
        self.mlflow.log_params(
            {k: "" if v is None else v for k, v in settings.items()}, run_id=self.run.info.run_id
        )

    def epoch(self, values: dict[str, float], step: int) -> None:
        safe = {k.replace("@", "_at_"): v for k, v in values.items()}  # MLflow keys take no '@'
        self.mlflow.log_metrics(safe, step=step, run_id=self.run.info.run_id)

    def finish(self, metrics: dict[str, float], run_dir: Path | None, failed: bool) -> None:
        run_id = self.run.info.run_id
        if metrics:
            self.mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in metrics.items()}, run_id=run_id)
        if run_dir is not None:
            for name in MODEL_FILES:
                if (run_dir / name).is_file():
                    self.mlflow.log_artifact(str(run_dir / name), run_id=run_id)
        self.mlflow.end_run(status="FAILED" if failed else "FINISHED")


class Trackers:
    """The trackers a config asks for, fed by the training loop: `start` once, `epoch(record)` after every
    validation, `finish` at the end (the run's files go to MLflow then)."""

    def __init__(self, config: Any, run_dir: Path | None, name: str):
        self.run_dir = run_dir
        self.lr = config.lr
        self.trackers: list[Any] = []
        for tracker in tracker_names(config.track):
            if tracker == "tensorboard":
                if run_dir is None:
                    raise ConfigError("track: tensorboard writes into the run directory; give one")
                self.trackers.append(TensorBoardTracker(run_dir, name))
            else:
                experiment = config.track_experiment or "bsarec"
                self.trackers.append(MlflowTracker(config.track_uri, experiment, name))

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def start(self, settings: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.start(settings)

    def epoch(self, record: dict[str, Any]) -> None:
        values = {
            "train/loss": record["loss"],
            "train/samples_per_s": record["samples_per_s"],
            "train/lr": self.lr,
        }
        values |= {
            f"valid/{k.removeprefix('valid_')}": v
            for k, v in record.items()
            if k.startswith("valid_") and k != "valid_seconds"
        }
        values |= {
            "time/train_seconds": record["train_seconds"],
            "time/valid_seconds": record["valid_seconds"],
        }
        for tracker in self.trackers:
            tracker.epoch(values, record["epoch"])

    def finish(self, metrics: dict[str, Any] | None, failed: bool = False) -> None:
        final = {f"test/{k}": v for k, v in (metrics or {}).get("test", {}).items()}
        if metrics and "best_epoch" in metrics:
            final["best_epoch"] = metrics["best_epoch"]
        for tracker in self.trackers:
            try:
                tracker.finish(final, self.run_dir, failed)
            except Exception as error:  # a tracker's failure must not lose the run
                log.warning("tracking: %s could not finish (%s)", type(tracker).__name__, error)
        self.trackers = []  # finished once


def run_trackers(config: Any, run_dir: Path | None, dataset_name: str) -> Trackers | None:
    """A run's experiment trackers, started with its settings (None when it asks for none). A grid cell
    (RUNS/dataset/model/protocol/seedN) is named by those parts."""
    if not config.track:
        return None
    name = run_dir.name if run_dir is not None else f"{config.model}-{dataset_name}"
    if run_dir is not None and run_dir.name.startswith("seed"):
        name = "-".join(run_dir.parts[-4:])
    trackers = Trackers(config, run_dir, name)
    trackers.start(config.to_dict())
    return trackers
