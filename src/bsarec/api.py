"""The Python API: construct with hyperparameters, `fit` on a dataset, `evaluate`, `recommend`, `save`/`load`.

Example (not run as a doctest):

>>> from bsarec import SequentialRecommender, resolve_dataset
>>> data = resolve_dataset("LastFM")                     # or a path: benchmark .txt, CSV/TSV/Parquet log
>>> rec = SequentialRecommender("bsarec", alpha=0.9, c=3, num_heads=1).fit(data, run_dir="runs/lastfm")
>>> rec.metrics["test"]["NDCG@10"]
>>> rec.recommend(items=["i1", "i2"], k=10)               # original item ids in, original ids out
>>> rec = SequentialRecommender.load("runs/lastfm")
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bsarec.config import CANDIDATES, HISTORY_MASKS, RUNTIME_SETTINGS, RunConfig
from bsarec.data.dataset import SequenceDataset
from bsarec.data.item_features import (
    ItemFeatures,
    appended,
    check_matched,
    conform,
    file_item_ids,
    read_item_features,
)
from bsarec.data.split import LeaveOneOutSplit, choose_cold_items, leave_one_out
from bsarec.distributed import SINGLE, ProcessGroup, process_group_from_env
from bsarec.environment import environment
from bsarec.errors import ConfigError, DataError, NonFiniteError
from bsarec.evaluation.metrics import (
    all_target_ranks,
    evaluate,
    metrics_from_ranks,
    sampled_candidates,
)
from bsarec.io import load_weights, save_weights
from bsarec.models import SequentialModel, build_model
from bsarec.models.item_features import FeatureItemEmbedding, attach_item_features
from bsarec.run_dir import RunDir, training_session
from bsarec.scoring import Recommendations, candidate_mask, recommend_histories
from bsarec.training.numerics import cpu_denormal_mode, cuda_matmul_precision
from bsarec.training.trainer import TrainResult, train

log = logging.getLogger("bsarec")


class SequentialRecommender:
    def __init__(self, model: str = "bsarec", config: RunConfig | None = None, **settings: Any):
        self.config = config if config is not None else RunConfig(model=model, **settings)
        self.model: SequentialModel | None = None
        self.dataset: SequenceDataset | None = None
        self.item_features: ItemFeatures | None = None
        self.metrics: dict[str, Any] = {}
        self.result: TrainResult | None = None
        self._split: LeaveOneOutSplit | None = None
        self._candidates: dict[str, torch.Tensor] = {}
        self._group: ProcessGroup = SINGLE
        self.added_items = 0  # items added after training (add_items)
        # the encoder recommendations use in place of the model's own (serving/engine.py: ONNX Runtime)
        self.encoder: Callable[..., torch.Tensor] | None = None

    # -- training ------------------------------------------------------------------------------------------
    def fit(
        self,
        dataset: SequenceDataset,
        item_features: ItemFeatures | None = None,
        *,
        run_dir: str | Path | None = None,
        progress: bool = True,
        resume: bool = False,
        evaluate_test: bool = True,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        overwrite: bool = False,
    ) -> SequentialRecommender:
        """Train on `dataset` with early stopping on validation, restore the best weights, evaluate on test
        once. `dataset` and `item_features` (docs/item_features.md) come read: `resolve_dataset`,
        `read_item_features`, or `bsarec.runs.read_run_item_features(config, dataset)` for the files a config's
        `item_features` setting names; fit reads no input file.
        With `run_dir`, the run's files are written there as training goes (RunDir: config, dataset, history,
        best weights, checkpoints, metrics); a new run refuses a `run_dir` that holds a run unless `overwrite`,
        and `resume` continues from its newest checkpoint (`SequentialRecommender.resume` reads what a run was
        trained on back from its directory). `evaluate_test=False` never touches the test targets (tuning);
        `on_epoch(epoch, valid_metrics)` is called after every validation.
        Under torchrun, every process calls `fit` and trains with DistributedDataParallel; only rank 0 writes
        to `run_dir` (see bsarec/distributed.py). Sets the process's torch thread count (`threads`); the CPU
        denormal mode (`flush_denormal`) holds while `fit` runs and is restored afterwards."""
        if item_features is not None and not isinstance(item_features, ItemFeatures):
            raise TypeError(
                f"fit: item_features must be read (ItemFeatures), not a {type(item_features).__name__}; read "
                "files with bsarec.read_item_features(path, dataset) or "
                "bsarec.runs.read_run_item_features(config, dataset)"
            )
        config = self.config
        if item_features is None and config.item_features:
            raise ConfigError(
                f"item_features: the setting names {config.item_features!r}, which fit() does not read; read them "
                "with bsarec.runs.read_run_item_features(config, dataset) and pass them as item_features"
            )
        if item_features is None and config.features_only:
            raise ConfigError("features_only: items would have no representation; give item features too")
        if item_features is None and config.id_dropout:
            raise ConfigError("id_dropout: leaves out the id part of items with features; give item features")
        if config.threads:
            torch.set_num_threads(config.threads)
        with ExitStack() as context:
            supported = context.enter_context(cpu_denormal_mode(config.flush_denormal))
            context.enter_context(cuda_matmul_precision(config.precision))
            if config.flush_denormal and not supported:
                log.info("this CPU cannot flush denormal floats to zero; training with them")
            group = self._group = process_group_from_env(config.torch_device())
            torch.manual_seed(config.seed)
            self._take_data(dataset, item_features)  # checked, split
            config = self.config
            run = RunDir(run_dir) if run_dir is not None else None
            session = context.enter_context(
                training_session(
                    run,
                    config,
                    dataset,
                    item_features,
                    resume=resume,
                    overwrite=overwrite,
                    writes=group.is_main,
                )
            )
            self.model = build_run_model(config, dataset, item_features, self._split).to(
                config.torch_device()
            )
            if group.rank > 0:  # the same initial weights everywhere, but each process its own dropout
                torch.manual_seed(config.seed + group.rank)
            log.info(
                "training %s on %s: %d users, %d items, %d training samples",
                config.model,
                dataset.name,
                dataset.num_users,
                dataset.n_items - 1,
                len(self._split.train_targets),
            )
            self.result = train(
                self.model,
                self._split,
                config,
                session.recorder,
                session.checkpointer,
                progress=progress,
                candidates=self.candidates("valid"),
                resume=resume,
                on_epoch=on_epoch,
                group=group,
            )
            self.metrics = self._final_metrics(evaluate_test)
            session.finish(self.metrics)
        return self

    def _take_data(self, dataset: SequenceDataset, item_features: ItemFeatures | None) -> None:
        """Hold the dataset and its item features (checked against its catalogue; the config names their files)
        and split it, refusing a split with nothing to train or validate on."""
        self.dataset, self.item_features, self._candidates = dataset, item_features, {}
        if item_features is not None:
            self._check_features(item_features, dataset)
            if self.config.item_features is None:  # config.json names the files
                files = [f["file"] for f in item_features.report.get("files", [])]
                self.config = self.config.updated(item_features=",".join(files) or "given to fit()")
        self._split = self._make_split(dataset)
        self._check_split(dataset)

    def _check_features(self, item_features: ItemFeatures, dataset: SequenceDataset) -> None:
        """Refuse item features read for another catalogue, or that match none of its items."""
        if item_features.catalogue not in (None, dataset.item_ids_fingerprint()):
            raise DataError(
                f"item features read for another catalogue than {dataset.name}'s (its item ids differ); read "
                "them for this dataset"
            )
        if item_features.n_items != dataset.n_items:
            raise DataError(
                f"item features for {item_features.n_items - 1} items, but {dataset.name} has {dataset.n_items - 1}"
            )
        check_matched(item_features, dataset.name)

    def _check_split(self, dataset: SequenceDataset) -> None:
        """Refuse a split with nothing to train or validate on, naming why."""
        cold_items = self.config.cold_items
        if len(self._split.train_targets) == 0:
            if cold_items:
                raise DataError(
                    f"{dataset.name}: cold_items {cold_items} withholds every item a training sample "
                    "could hold, so there is nothing to train on; withhold fewer items"
                )
            raise DataError(
                f"{dataset.name}: no user has 3 or more items, so there is nothing to train on "
                "(the last two items of each user are the validation and test targets)"
            )
        if len(self._split.valid.targets) == 0:
            raise DataError(
                f"{dataset.name}: no user is left to validate on (cold_items {cold_items} withholds "
                "every validation target), so no epoch could be chosen; withhold fewer items"
            )

    def _final_metrics(self, evaluate_test: bool = True) -> dict[str, Any]:
        """metrics.json of a finished training: the best validation metrics, test (once, unless told not to),
        how training went, the protocol, and where the numbers come from."""
        config, result, dataset = self.config, self.result, self._require_dataset()
        started = time.perf_counter()
        metrics: dict[str, Any] = {"valid": result.best_valid}
        if result.best_epoch < 0:  # stopped before any epoch was validated: nothing trained to evaluate
            evaluate_test = False
        if evaluate_test:
            metrics["test"] = test = self.evaluate("test")
            log.info("test %s", " ".join(f"{k} {v:.4f}" for k, v in test.items()))
        metrics |= {
            "best_epoch": result.best_epoch,
            "epochs": result.epochs,
            "train_seconds": result.train_seconds,
        }
        if evaluate_test:
            metrics["test_seconds"] = time.perf_counter() - started
        metrics |= {
            "interrupted": result.interrupted,
            "protocol": self.protocol(),
            "history_mask": config.history_mask,
            "dataset": dataset.name,
            "split": self.split.report,
            "environment": environment(),
        }
        if self.item_features is not None:
            metrics["item_features"] = self.item_features.report
        if evaluate_test and config.cold_items:
            metrics["test_by_item_group"] = self.test_by_item_group()
        return metrics

    def protocol(self) -> dict[str, Any]:
        """The evaluation protocol of this run, for logs, result files and table captions."""
        c = self.config
        return {
            "candidates": c.candidates if c.candidates == "full" else f"{c.candidates}-{c.eval_negatives}",
            "history_mask": c.history_mask,
            "padding": c.padding,
            "monitor": c.monitor,
        }

    @property
    def split(self) -> LeaveOneOutSplit:
        if self._split is None:
            self._split = self._make_split(self._require_dataset())
        return self._split

    def _make_split(self, dataset: SequenceDataset) -> LeaveOneOutSplit:
        c = self.config
        withheld = self.cold_items(dataset) if c.cold_items else None
        return leave_one_out(dataset, c.max_len, c.padding, c.resolved("train_samples"), withheld)

    def cold_items(self, dataset: SequenceDataset | None = None) -> np.ndarray:
        """The internal ids withheld from training by `cold_items` (empty without it), drawn with the seed."""
        c, dataset = self.config, dataset if dataset is not None else self._require_dataset()
        return choose_cold_items(dataset, c.cold_items, c.seed) if c.cold_items else np.zeros(0, np.int64)

    def test_by_item_group(self) -> dict[str, dict[str, float]]:
        """Test metrics of the users whose target is a warm item (in training) and of those whose target is a
        cold one (withheld by `cold_items`), each with its number of users."""
        model, evalset, c = self._require_model(), self.split.test, self.config
        ranks = all_target_ranks(
            model, evalset, c.history_mask, c.eval_batch_size, self.candidates("test"), self._group
        )
        cold = torch.from_numpy(np.isin(evalset.targets.numpy(), self.cold_items()))
        out = {}
        for name, members in (("warm", ~cold), ("cold", cold)):
            count = int(members.sum())
            out[name] = {**(metrics_from_ranks(ranks[members]) if count else {}), "users": count}
        return out

    def candidates(self, split: str, candidates: str | None = None) -> torch.Tensor | None:
        """The sampled negatives of a split (None for full ranking); drawn once from the run's seed."""
        kind = candidates or self.config.candidates
        if kind == "full":
            return None
        key = f"{split}/{kind}"
        if key not in self._candidates:
            dataset = self._require_dataset()
            weights = None
            if kind == "sampled-popularity":  # interactions per item over every user's whole sequence
                weights = torch.from_numpy(dataset.item_counts()).to(torch.float64)
            evalset = self.split.valid if split == "valid" else self.split.test
            seed = self.config.seed + (0 if split == "valid" else 1)
            self._candidates[key] = sampled_candidates(
                evalset, dataset.n_items, self.config.eval_negatives, weights, seed
            )
        return self._candidates[key]

    def evaluate(
        self, split: str = "test", history_mask: str | None = None, candidates: str | None = None
    ) -> dict[str, float]:
        """Metrics on the validation or test targets, under the run's protocol or the options given."""
        if split not in ("valid", "test"):
            raise ConfigError(f"split: expected 'valid' or 'test', got {split!r}")
        if candidates is not None and candidates not in CANDIDATES:
            raise ConfigError(f"candidates: expected one of {CANDIDATES}, got {candidates!r}")
        if history_mask is not None and history_mask not in HISTORY_MASKS:
            raise ConfigError(f"history_mask: expected one of {HISTORY_MASKS}, got {history_mask!r}")
        if self.added_items:
            raise ConfigError(
                "evaluate: items were added after training, which changes the ranking; load the run again"
            )
        model = self._require_model()
        evalset = self.split.valid if split == "valid" else self.split.test
        mask = history_mask or self.config.history_mask
        candidates_of_split = self.candidates(split, candidates)
        return evaluate(model, evalset, mask, self.config.eval_batch_size, candidates_of_split, self._group)

    # -- recommending ---------------------------------------------------------------------------------------
    def recommend(
        self,
        user: Any = None,
        items: list[Any] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        allow: list[Any] | None = None,
        deny: list[Any] | None = None,
        where: dict[str, list[Any]] | None = None,
    ) -> Recommendations:
        """Top-k for a known user (their whole history) or for a raw history of original item ids, oldest
        first. Unknown item ids are dropped and listed in `unknown`; an empty (or all-unknown) history gets
        the model's answer for an empty sequence, flagged `empty_history`. Only the last max_len items are
        read; `exclude_seen` removes every item of the history. `allow` restricts the answer to those ids,
        `deny` removes ids (ids outside the catalogue are ignored: they could never be recommended). `where`
        keeps the items that hold, for each named categorical feature, one of the given values
        ({"category": ["shoes", "boots"]}; a run with item features only)."""
        if (user is None) == (items is None):
            raise ValueError("give exactly one of user= or items=")
        dataset = self._require_dataset()
        if user is not None:
            row = dataset.user_row(user)
            # an unknown user is a cold-start user: the answer for an empty history, flagged
            history = list(dataset.sequences[row]) if row is not None else []
            unknown: list[Any] = [] if row is not None else [user]
        else:
            history, unknown = self._to_internal(items)
            row = None
        return self._recommend_internal([history], [unknown], [row], k, exclude_seen, allow, deny, where)[0]

    def recommend_batch(
        self,
        histories: list[list[Any]],
        k: int = 10,
        exclude_seen: bool = True,
        allow: list[Any] | None = None,
        deny: list[Any] | None = None,
        batch_size: int = 256,
        where: dict[str, list[Any]] | None = None,
    ) -> list[Recommendations]:
        """`recommend(items=...)` for many raw histories at once (scored `batch_size` at a time)."""
        out: list[Recommendations] = []
        for start in range(0, len(histories), batch_size):
            parsed = [self._to_internal(items) for items in histories[start : start + batch_size]]
            out += self._recommend_internal(
                [h for h, _ in parsed],
                [u for _, u in parsed],
                [None] * len(parsed),
                k,
                exclude_seen,
                allow,
                deny,
                where,
            )
        return out

    def _to_internal(self, items: list[Any]) -> tuple[list[int], list[Any]]:
        dataset = self._require_dataset()
        known = [(item, dataset.item_index(item)) for item in items]
        return [i for _, i in known if i is not None], [item for item, i in known if i is None]

    def _recommend_internal(
        self,
        histories: list[list[int]],
        unknowns: list[list[Any]],
        rows: list[int | None],
        k: int,
        exclude_seen: bool,
        allow: list[Any] | None = None,
        deny: list[Any] | None = None,
        where: dict[str, list[Any]] | None = None,
    ) -> list[Recommendations]:
        dataset = self._require_dataset()
        allowed = candidate_mask(dataset, self.item_features, allow, deny, where)
        c = self.config
        return recommend_histories(
            self._require_model(),
            dataset,
            histories,
            unknowns,
            rows,
            k,
            c.max_len,
            c.padding,
            exclude_seen,
            allowed,
            self.encoder,
        )

    def add_items(
        self,
        path: str | Path,
        id_column: str | None = None,
        categorical: tuple[str, ...] = (),
        multi_separator: str = "|",
    ) -> dict[str, Any]:
        """Add the items of a features file that the catalogue does not hold yet, without retraining: they are
        represented by their features alone (the model's fields, vocabularies and scaling) and can be
        recommended and appear in histories. Items already in the catalogue are left as they are. The file's
        fields must be the model's, by name (`FIELD=FILE` names the field of a .json or .npy file), and are
        read as the model read them: anything else is refused with the file, row and field named. In a
        catalogue of integer ids, new ids written as integers are integers. Returns what was added and what of
        the file the model cannot use (values it never saw, its fields the file does not give)."""
        model, dataset = self._require_model(), self._require_dataset()
        table = model.item_table()
        if self.item_features is None or not isinstance(table, FeatureItemEmbedding):
            raise ConfigError("add_items: this run was trained without item features; new items need them")
        if table.ids.num_embeddings > table.n_featured:
            raise ConfigError(f"add_items: {type(model).__name__} keeps its mask token after the items")
        if self.encoder is not None:
            raise ConfigError(
                "add_items: add items before choosing an engine; its encoder holds the items it had"
            )
        ids = file_item_ids(path, id_column)
        new_ids = list(dict.fromkeys(i for i in ids if dataset.item_index(i) is None))
        if all(isinstance(i, int) for i in dataset.item_ids[1:]):
            new_ids = [int(i) if re.fullmatch(r"-?\d+", i) else i for i in new_ids]
        report: dict[str, Any] = {
            "file": str(path),
            "added": len(new_ids),
            "already_known": len(ids) - len(new_ids),
        }
        if not new_ids:
            return report
        arrivals = SequenceDataset([], [], [None, *new_ids], name=f"new items of {path}")
        layout = self.item_features
        raw = read_item_features(path, arrivals, id_column, categorical, multi_separator, layout=layout)
        learned = [bag.num_embeddings - 1 for bag in table.categorical]
        conformed, unusable = conform(raw, self.item_features, str(path), learned)
        self.item_features = appended(self.item_features, conformed)
        table.extend(self.item_features)
        dataset.item_ids.extend(new_ids)
        dataset.forget_item_index()
        self.added_items += len(new_ids)
        return {**report, **unusable}

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        if self.added_items:
            raise ConfigError("save: items were added after training; save the run before adding them")
        run = RunDir(directory)
        with run.owned():
            run.write_run_data(self.config, self._require_dataset(), self.item_features)
            save_weights(self._require_model(), run.weights_file)
            if self.metrics:
                run.write_metrics(self.metrics)
        return run.path

    @classmethod
    def resume(cls, directory: str | Path, progress: bool = True, **runtime: Any) -> SequentialRecommender:
        """Continue an interrupted run from its newest checkpoint, with its own config and dataset.

        `runtime` may change the settings that do not change what is computed (config.RUNTIME_SETTINGS:
        threads, device, checkpoint_steps, keep_checkpoints, ...); None keeps the run's own value."""
        run = RunDir(directory)
        changes = {name: value for name, value in runtime.items() if value is not None}
        fixed = sorted(set(changes) - set(RUNTIME_SETTINGS))
        if fixed:
            raise ConfigError(
                f"{run}: a resumed run keeps its own {', '.join(fixed)}; "
                f"only {', '.join(RUNTIME_SETTINGS)} may change"
            )
        config = run.read_run_config(**changes)
        if run.status == "finished":
            raise ConfigError(f"{run}: this run has finished (metrics.json exists); nothing to resume")
        dataset, item_features = SequenceDataset.load(run.dataset_dir), run_item_features(run, config)
        return cls(config=config).fit(
            dataset, item_features, run_dir=run.path, progress=progress, resume=True
        )

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> SequentialRecommender:
        """A saved run, on `device` (default cpu, whatever device it was trained on)."""
        run = RunDir(directory).require(RunDir.CONFIG)
        metrics = run.read_metrics() or {}
        if metrics.get("best_epoch", 0) < 0:
            raise ConfigError(
                f"{run}: no epoch of this run finished training"
                f"{' (it was interrupted)' if metrics.get('interrupted') else ''}, so it has no trained weights to "
                "use; continue it with `bsarec train --resume` or train it again"
            )
        run.require(RunDir.WEIGHTS)
        config = run.read_run_config(device=device)
        rec = cls(config=config)
        rec.dataset = SequenceDataset.load(run.dataset_dir)
        rec.item_features = run_item_features(run, config)
        features_id = rec.item_features.fingerprint() if rec.item_features is not None else None
        run.check_identity(rec.dataset.fingerprint(), features_id, config.to_dict())
        torch.manual_seed(config.seed)
        rec.model = build_run_model(config, rec.dataset, rec.item_features)
        load_weights(rec.model, run.weights_file)  # names the file when it does not fit the model
        damaged = [name for name, value in rec.model.state_dict().items() if not bool(value.isfinite().all())]
        if damaged:
            raise NonFiniteError(f"{run.weights_file}: {', '.join(damaged)} hold NaN or infinite values")
        rec.model.to(config.torch_device())
        rec.model.eval()
        rec.metrics = metrics
        return rec

    def _require_model(self) -> SequentialModel:
        if self.model is None:
            raise RuntimeError("no model: call fit() or load() first")
        return self.model

    def _require_dataset(self) -> SequenceDataset:
        if self.dataset is None:
            raise RuntimeError("no dataset: call fit() or load() first")
        return self.dataset


def build_run_model(
    config: RunConfig,
    dataset: SequenceDataset,
    item_features: ItemFeatures | None = None,
    split: LeaveOneOutSplit | None = None,
) -> SequentialModel:
    """The model a run config describes, sized for `dataset`. Caser's user table has one row per dataset row
    plus one (the reference sizes it #users + 1). With item features, the items no training sample of `split`
    holds get no id embedding and keep it at zero while training (models/item_features.py); without `split` (a
    model built to load trained weights into, whose id rows those weights hold) that is not needed."""
    model = build_model(config.model, dataset.n_items, config.model_settings(), n_users=dataset.num_users + 1)
    if item_features is None:
        return model
    trained = torch.ones(dataset.n_items, dtype=torch.bool)
    if split is not None:
        trained[:] = False
        trained[split.train_inputs.unique()] = True
        trained[split.train_targets] = True
    return attach_item_features(model, item_features, trained, config.features_only, config.id_dropout)


def run_item_features(run: RunDir, config: RunConfig) -> ItemFeatures | None:
    """The item features a run was trained with, from its own copy (None for a run without)."""
    if ItemFeatures.saved_in(run.item_features_dir):
        return ItemFeatures.load(run.item_features_dir)
    if config.item_features:
        raise DataError(f"{run.item_features_dir}: missing; this run was trained with item features")
    return None
