"""RunDir: the one owner of a run directory's layout and of what its files say about the run.

    RUN_DIR/config.json        the full resolved config (enough to re-run)
            metrics.json       valid/test metrics, written at the end (or on Ctrl-C, marked "interrupted")
            history.jsonl      one line per epoch: the learning curves
            model.safetensors  the best weights so far
            identity.json      fingerprints of the dataset and item features, and the settings trained with
            train.log          the run's log
            dataset/           the sequences and id maps
            checkpoints/       the newest training checkpoints (training/checkpoint.py)

A run's status: "new" (no config.json), "running" (started, no metrics yet: training or killed),
"interrupted" (stopped by Ctrl-C; its metrics describe the best weights so far) or "finished".

A process that writes a run owns it (`owned`: a lock file beside the directory) so that a second one cannot
delete or mix into it; whoever loads or resumes a run checks that its dataset, item features and settings are
the ones it was trained with (`check_identity`), naming what changed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from filelock import FileLock, Timeout

from bsarec.config import RUNTIME_SETTINGS, RunConfig
from bsarec.errors import ConfigError, DataError
from bsarec.io import atomic_write_json, is_partial_write
from bsarec.tracking import Trackers, run_trackers
from bsarec.training.checkpoint import Checkpointer
from bsarec.training.recorder import EpochRecorder

if TYPE_CHECKING:  # what a run is trained on, written by write_run_data
    from bsarec.data.dataset import SequenceDataset
    from bsarec.data.item_features import ItemFeatures

log = logging.getLogger("bsarec")

Status = Literal["new", "running", "interrupted", "finished"]


class RunDir:
    CONFIG = "config.json"
    METRICS = "metrics.json"
    HISTORY = "history.jsonl"
    WEIGHTS = "model.safetensors"
    LOG = "train.log"
    DATASET = "dataset"
    ITEM_FEATURES = "item_features"  # the run's item side information, when it has some
    CHECKPOINTS = "checkpoints"
    IDENTITY = "identity.json"
    LOCK = ".owner.lock"  # held by the process that writes the run (`owned`)
    TENSORBOARD = "tensorboard"  # event files of `--track tensorboard`

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def own_names(cls) -> set[str]:
        return {
            cls.CONFIG,
            cls.METRICS,
            cls.HISTORY,
            cls.WEIGHTS,
            cls.LOG,
            cls.DATASET,
            cls.CHECKPOINTS,
            cls.ITEM_FEATURES,
            cls.IDENTITY,
            cls.LOCK,
            cls.TENSORBOARD,
        }

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    config_file = property(lambda self: self.path / self.CONFIG)
    metrics_file = property(lambda self: self.path / self.METRICS)
    history_file = property(lambda self: self.path / self.HISTORY)
    weights_file = property(lambda self: self.path / self.WEIGHTS)
    log_file = property(lambda self: self.path / self.LOG)
    dataset_dir = property(lambda self: self.path / self.DATASET)
    item_features_dir = property(lambda self: self.path / self.ITEM_FEATURES)
    checkpoint_dir = property(lambda self: self.path / self.CHECKPOINTS)
    identity_file = property(lambda self: self.path / self.IDENTITY)
    lock_file = property(lambda self: self.path / self.LOCK)

    @contextmanager
    def owned(self) -> Iterator[RunDir]:
        """Hold the run for this process while it writes it: another process that tries to write it (a second
        `train --overwrite`, a resume) is refused while this one lives (the lock goes with the process)."""
        self._refuse_foreign()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.lock_file, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(
                f"{self.path}: another process is writing this run now (training or saving it); wait for it "
                "to end, or choose another directory"
            ) from None
        try:
            yield self
        finally:
            lock.release()

    def prepare_new(self, overwrite: bool = False) -> None:
        """Make this the directory of a new run. A directory that holds a run (or what is left of one) is
        refused unless `overwrite`, which deletes that run's files first: a new run never mixes with an old one
        or takes over its checkpoints. A directory holding anything else is never written into."""
        self._refuse_foreign()
        entries = [e for e in self._entries() if e.name != self.LOCK]  # the lock is the owner's
        if entries and not overwrite:
            status = self.status
            what = {
                "new": "the start of a run",
                "running": "an unfinished run",
                "interrupted": "a run stopped by Ctrl-C",
                "finished": "a finished run",
            }
            raise ConfigError(
                f"{self.path}: holds {what[status]}; --overwrite (overwrite=True) replaces"
                " it" + ("" if status in ("new", "finished") else ", --resume continues it")
            )
        for entry in entries:  # a symbolic link is removed itself, never what it points to
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _entries(self) -> list[Path]:
        return sorted(self.path.iterdir()) if self.path.is_dir() else []

    def _refuse_foreign(self) -> None:
        """A run is never written into a file's place or among files that are not a run's."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path}: a file, not a directory; --output takes a directory for the run")
        ours = self.own_names()
        foreign = [e.name for e in self._entries() if e.name not in ours and not is_partial_write(e.name)]
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ConfigError(
                f"{self.path}: not empty and not a run directory (it holds {shown}); choose a new or empty directory"
            )

    # -- what the run directory says -------------------------------------------------------------------------
    def require(self, *files: str) -> RunDir:
        """Raise ConfigError naming the first of `files` (default: config.json) that is missing."""
        for name in files or (self.CONFIG,):
            if not (self.path / name).exists():
                raise ConfigError(f"{self.path}: not a run directory (missing {name})")
        return self

    def read_config(self) -> dict[str, Any]:
        return self._read_json(self.require().config_file)

    def read_run_config(self, **changes: Any) -> RunConfig:
        """config.json as a RunConfig (with `changes` applied); an error in it names the file."""
        try:
            return RunConfig.from_dict({**self.read_config(), **changes})
        except ConfigError as error:
            raise ConfigError(f"{self.config_file}: {error}") from None

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config_file, config)

    def write_identity(self, dataset: str, item_features: str | None, config: dict[str, Any]) -> None:
        """Record the fingerprints of the dataset and item features and the settings that shape the run (all
        but config.RUNTIME_SETTINGS)."""
        settings = {k: v for k, v in config.items() if k not in RUNTIME_SETTINGS}
        atomic_write_json(
            self.identity_file, {"dataset": dataset, "item_features": item_features, "settings": settings}
        )

    def check_identity(self, dataset: str, item_features: str | None, config: dict[str, Any]) -> None:
        """Refuse a run whose dataset, item features or settings are not those it was trained with, naming
        what changed. A run written before identities were recorded has nothing to check."""
        if not self.identity_file.is_file():
            return
        recorded = self._read_json(self.identity_file)
        if recorded.get("dataset") != dataset:
            raise DataError(
                f"{self.dataset_dir}: not the dataset this run was trained on (its id maps or sequences differ "
                "from the ones recorded in identity.json); restore it, or train a new run on this dataset"
            )
        if recorded.get("item_features") != item_features:
            what = "has none" if item_features is None else "are not the ones it was trained with"
            raise DataError(
                f"{self.item_features_dir}: the run's item features {what} (identity.json records "
                f"{'none' if recorded.get('item_features') is None else 'others'}); restore them"
            )
        settings = recorded.get("settings", {})
        changed = [
            f"{name} is {config.get(name)!r}, trained with {settings[name]!r}"
            for name in settings
            if config.get(name) != settings[name]
        ]
        changed += [
            f"{name} is new" for name in config if name not in settings and name not in RUNTIME_SETTINGS
        ]
        if changed:
            raise ConfigError(
                f"{self.config_file}: the settings differ from those the run was trained with ("
                + "; ".join(changed)
                + "); only "
                + ", ".join(RUNTIME_SETTINGS)
                + " may change. Train a new run for other settings"
            )

    def write_run_data(
        self, config: RunConfig, dataset: SequenceDataset, item_features: ItemFeatures | None
    ) -> None:
        """What a run is trained on, written once at its start: config, dataset, item features, identity."""
        self.write_config(config.to_dict())
        dataset.save(self.dataset_dir)
        if item_features is not None:
            item_features.save(self.item_features_dir)
        features_id = item_features.fingerprint() if item_features is not None else None
        self.write_identity(dataset.fingerprint(), features_id, config.to_dict())

    def log_resumption(self, config: RunConfig) -> None:
        """Say in the run's own log how this resumption differs from the run as it was started."""
        status = self.status
        if status == "interrupted":  # its interim metrics are replaced at the end
            log.info("continuing a run stopped by Ctrl-C from its newest checkpoint")
        if status == "new":
            return  # the trainer says what is missing
        saved = self.read_config()
        changed = {k: v for k, v in config.to_dict().items() if k in saved and saved[k] != v}
        if changed:
            log.info("resuming with %s", ", ".join(f"{name}={value}" for name, value in changed.items()))

    @contextmanager
    def logging_to_file(self, only: logging.Filter | None = None) -> Iterator[None]:
        """Append bsarec's log lines (those `only` passes, if given) to the run's train.log meanwhile."""
        self.path.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_file, mode="a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        if only is not None:
            handler.addFilter(only)
        logger = logging.getLogger("bsarec")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            handler.close()

    def read_metrics(self) -> dict[str, Any] | None:
        """metrics.json, finished or interrupted; None when there is none yet."""
        return self._read_json(self.metrics_file) if self.metrics_file.is_file() else None

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.metrics_file, metrics)

    @property
    def status(self) -> Status:
        if not self.config_file.is_file():
            return "new"
        metrics = self.read_metrics()
        if metrics is None:
            return "running"
        return "interrupted" if metrics.get("interrupted") else "finished"

    def finished_metrics(self) -> dict[str, Any] | None:
        """metrics.json if the run ran to its end; None otherwise (a run stopped by Ctrl-C has metrics marked
        "interrupted" that describe the best weights so far: `SequentialRecommender.resume` continues it)."""
        metrics = self.read_metrics()
        return None if metrics is None or metrics.get("interrupted") else metrics

    def checkpoints(self, keep: int = 2) -> Checkpointer:
        return Checkpointer(self.checkpoint_dir, keep)

    def read_history(self) -> list[dict[str, Any]]:
        """The run's per-epoch records (loss, validation metrics, speed), in order: its learning curves."""
        path = self.history_file
        if not path.is_file():
            raise DataError(f"{path}: no such file; is {self.path} a run directory?")
        records = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            try:
                records.append(json.loads(line))
            except ValueError as error:
                raise DataError(
                    f"{path}, line {number}: expected one JSON object per epoch ({error})"
                ) from None
        return records

    def newest_checkpoint(self) -> Path | None:
        """The JSON file of the newest complete checkpoint, or None."""
        complete = self.checkpoints().complete()
        return complete[-1] if complete else None

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            value = json.loads(path.read_text())
        except ValueError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}: expected a JSON object")
        return value


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run's learning curves: `RunDir(run_dir).read_history()`."""
    return RunDir(run_dir).read_history()


@dataclass
class RunSession:
    """A run in training: where its epochs are recorded (`recorder`), its checkpoints (`checkpointer`, None
    without a run directory) and, at the end, `finish(metrics)`: metrics.json and the trackers' last values."""

    recorder: EpochRecorder
    checkpointer: Checkpointer | None
    run: RunDir | None  # the run directory this process writes, if any
    trackers: Trackers | None

    def finish(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.write_metrics(metrics)
        if self.trackers:
            self.trackers.finish(metrics)


@contextmanager
def training_session(
    run: RunDir | None,
    config: RunConfig,
    dataset: SequenceDataset,
    item_features: ItemFeatures | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    writes: bool = True,
    who: str = "",
    log_filter: logging.Filter | None = None,
) -> Iterator[RunSession]:
    """Everything a run directory does around training, in one place. A new run: own the directory
    (`owned`), refuse or replace what it holds (`prepare_new`), log to its train.log, write what the run is
    trained on (`write_run_data`). A resumed run: own it, check that its dataset, features and settings are
    those it was trained with (`check_identity`), say in its log what changed. Then the run's trackers start,
    and the session yields its recorder and checkpointer. `writes=False` (a process other than the main one
    under torchrun) writes nothing and only reads the checkpoints; without `run`, epochs are recorded in
    memory. Trackers are told of a failure."""
    features_id = item_features.fingerprint() if item_features is not None else None
    with ExitStack() as context:
        if run is not None and writes:
            context.enter_context(run.owned())  # no other process writes the run meanwhile
            if not resume:
                run.prepare_new(overwrite)
            context.enter_context(run.logging_to_file(log_filter))
        if run is not None and resume:
            run.check_identity(dataset.fingerprint(), features_id, config.to_dict())
            if writes:
                run.log_resumption(config)
        elif run is not None and writes:
            run.write_run_data(config, dataset, item_features)
        writing = run if writes else None
        trackers = run_trackers(config, writing.path if writing else None, dataset.name) if writes else None
        on_record = trackers.epoch if trackers else None
        checkpointer = run.checkpoints(config.keep_checkpoints) if run is not None else None
        session = RunSession(
            epoch_recorder(writing, config.monitor, on_record, who), checkpointer, writing, trackers
        )
        try:
            yield session
        except BaseException:
            if trackers:
                trackers.finish(None, failed=True)
            raise


def epoch_recorder(
    run: RunDir | None, monitor: str, on_record: Callable[[dict[str, Any]], None] | None = None, who: str = ""
) -> EpochRecorder:
    """What each epoch of a run leaves behind: in its run directory (history.jsonl, the best weights) when it
    has one, in memory otherwise."""
    if run is None:
        return EpochRecorder(monitor, on_record=on_record, who=who)
    return EpochRecorder(monitor, run.history_file, run.weights_file, on_record, who)
