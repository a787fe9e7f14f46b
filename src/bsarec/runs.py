"""Run orchestration: what happens around `SequentialRecommender.fit` when runs are made from settings and
files, by the CLI, the benchmark grid and the tuner. `read_run_item_features` reads the item features a
config names (files, or a registered dataset's attributes); `fit_packed` trains several runs of one model
together as one batched model (training/packed.py), each written to its run directory as `fit` writes one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from bsarec.api import SequentialRecommender, build_run_model
from bsarec.config import RunConfig
from bsarec.data.dataset import SequenceDataset
from bsarec.data.item_features import ItemFeatures, resolve_item_features
from bsarec.run_dir import RunDir, training_session
from bsarec.training.numerics import cuda_matmul_precision
from bsarec.training.packed import RunLogFilter, about_run, check_packable, resumable, train_packed

log = logging.getLogger("bsarec")


def read_run_item_features(
    config: RunConfig, dataset: SequenceDataset, **options: Any
) -> ItemFeatures | None:
    """The item features the config's `item_features` setting names, read for `dataset` (None without the
    setting): files, comma-separated, or "attributes", a registered dataset's S3-Rec attribute file (found in
    `data_dir` or downloaded). `options` are read_item_features's (id column, categorical columns, ...)."""
    if not config.item_features:
        return None
    return resolve_item_features(config.item_features, dataset, config.data_dir, check=False, **options)


def fit_packed(
    configs: list[RunConfig],
    dataset: SequenceDataset,
    run_dirs: list[str | Path | None] | None = None,
    overwrite: bool = False,
    evaluate_test: bool = True,
    on_epoch: Callable[[int, dict[str, Any]], bool | None] | None = None,
    resume: bool = False,
) -> list[SequentialRecommender]:
    """Train several runs of one model on `dataset` together, as one batched model (training/packed.py): they
    may differ in seed, lr, weight_decay, patience, epochs, hidden_dropout, attn_dropout and (BSARec) alpha and
    c. Each run is built, evaluated and written to its run directory (config, dataset, history, best weights,
    metrics) as `fit` writes it, with a checkpoint of each run after every epoch. `resume=True` continues the
    pack from its runs' newest checkpoints when they make one pack again (the same runs, cut off together);
    otherwise it starts them anew. `evaluate_test=False` never touches the test targets (tuning); `on_epoch(index, record)` after each
    run's validation may return True to stop that run (pruning). Returns one fitted recommender per config."""
    check_packable(configs)
    run_dirs = list(run_dirs) if run_dirs is not None else [None] * len(configs)
    runs = [RunDir(d) if d is not None else None for d in run_dirs]
    saved = None
    if resume:
        newest = [r.checkpoints().newest() if r is not None else None for r in runs]
        if resumable(newest, configs):
            saved = newest
        else:
            log.warning("no common checkpoint of the pack's runs: training them from the start")
    recs, sessions = [], []
    split = None
    with ExitStack() as context:  # each run is this process's, and logs to its train.log, until the pack ends
        for index, (config, run) in enumerate(zip(configs, runs, strict=True)):
            rec = SequentialRecommender(config=config)
            torch.manual_seed(config.seed)  # each run's weights are drawn as its unpacked run draws them
            if split is None:  # the same for every run of a pack
                rec._take_data(dataset, None)
                split = rec._split
            rec.dataset, rec._split = dataset, split
            session = training_session(
                run,
                config,
                dataset,
                None,
                resume=saved is not None,
                overwrite=overwrite or resume,
                who=f"run {index} (seed {config.seed}): ",
                log_filter=RunLogFilter(index),  # its own lines and the pack's
            )
            sessions.append(context.enter_context(session))
            rec.model = build_run_model(config, dataset).to(config.torch_device())
            recs.append(rec)
            with about_run(index):
                log.info(
                    "training %s on %s as run %d of a pack of %d (seed %d): %d users, %d items, %d training samples",
                    config.model,
                    dataset.name,
                    index,
                    len(configs),
                    config.seed,
                    dataset.num_users,
                    dataset.n_items - 1,
                    len(split.train_targets),
                )
        with cuda_matmul_precision(configs[0].precision):
            results = train_packed(
                [r.model for r in recs],
                split,
                configs,
                [r.candidates("valid") for r in recs],
                [s.recorder for s in sessions],
                [s.checkpointer for s in sessions],
                resume_from=saved,
                on_epoch=on_epoch,
            )
        for rec, result, session in zip(recs, results, sessions, strict=True):
            rec.result = result
            rec.metrics = rec._final_metrics(evaluate_test)
            session.finish(rec.metrics)
    return recs
