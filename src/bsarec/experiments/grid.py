"""`bsarec benchmark`: a grid of models x datasets x seeds, each a normal training run, and its tables.

`run_benchmark(...)` (or `BenchmarkGrid(...).run()`) is the Python entry point; the CLI is a thin shell over it. A cell whose run ran to its
end is skipped, and a cell that was cut off midway (killed, or stopped by Ctrl-C) continues from its newest
checkpoint, so an interrupted grid resumes where it stopped. A cell is locked while it trains (a lock file
beside its run directory, released by the OS if the process dies), so several grids can share one runs
directory: each skips the cells another is training. The output's results.json is the record of the finished
cells: a cell it holds (with its settings) stays finished when its run directory is gone (a wiped scratch
disk, a grid finished on another machine) and is not trained again, and stays in the results when a later
grid into the same output plans only some of the cells (`--seeds 42` first, the other seeds later) or runs
beside this one (other models or datasets). After each finished cell the results are rewritten from every
finished cell (experiments/tables.py), the recorded ones read again under a lock.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from bsarec.api import SequentialRecommender
from bsarec.config import RUNTIME_SETTINGS, RunConfig
from bsarec.data.registry import resolve_dataset
from bsarec.environment import machine_line
from bsarec.errors import ConfigError
from bsarec.experiments.cells import Cell, cell_config, cell_key, comparable, protocol_tag, run_dir_of
from bsarec.experiments.tables import (
    RESULTS_LOCK,
    caption_for,
    load_published,
    published_left_out,
    read_meta,
    read_recorded,
    write_results,
)
from bsarec.models import MODELS
from bsarec.run_dir import RunDir
from bsarec.runs import fit_packed, read_run_item_features
from bsarec.training.packed import PACKABLE, check_packable

log = logging.getLogger("bsarec")
# rough relative cost per epoch on a CPU (LastFM, measured by `bsarec speed`), to start the slowest cells first
RELATIVE_COST = {"caser": 7.0, "fearec": 7.5, "duorec": 3.2, "bert4rec": 1.5}
# the order pending cells train in: longest first finishes a whole grid soonest (the long cells do not trail
# at the end with one core busy); shortest first finishes the most cells soonest, for a grid that will be
# stopped and resumed; given keeps the order of --models, --datasets and --seeds
ORDERS = ("longest", "shortest", "given")


@dataclass
class GridOutcome:
    failures: list[str] = field(default_factory=list)  # "cell: error"
    busy: list[str] = field(default_factory=list)  # cells skipped because another process is training them


class BenchmarkGrid:
    """A planned grid: every cell with its run directory, the jobs still to run, and where the results go.
    `run()` trains the pending cells and rewrites the results after each; `write()` only rewrites them."""

    def __init__(
        self,
        models: list[str],
        datasets: list[str],
        seeds: list[int],
        runs: str | Path = "runs/benchmark",
        output: str | Path | None = None,
        preset: str | None = "paper",
        overrides: dict[str, Any] | None = None,
        jobs: int = 1,
        threads: int | None = None,
        device: str | None = None,
        epochs: int | None = None,
        data_dir: str | None = None,
        reference: str | Path | None = None,
        command: str | None = None,
        pack: int = 1,
        order: str = "longest",
    ):
        self.models, self.jobs, self.pack = models, jobs, pack
        self.runs, self.output = Path(runs), Path(output or runs)
        overrides = overrides or {}
        threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))  # the cores shared out
        explicit = {"epochs": epochs, "threads": threads, "device": device, "data_dir": data_dir}
        self.recorded = read_recorded(self.output)
        self.pending, self.cells = plan(
            models, datasets, seeds, self.runs, preset, overrides, self.recorded, order, **explicit
        )
        first = cell_config(self.cells[0][0], preset, overrides, seed=seeds[0], **explicit)
        self.meta = {
            "command": command or f"run_benchmark(models={models}, datasets={datasets}, seeds={seeds})",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine_line() + f", device {first.torch_device()}",
        }
        self.caption = functools.partial(caption_for, overrides, preset, config=first)  # of the rows' seeds
        self.published = {} if published_left_out(first) else load_published(reference)
        self.results: dict[str, Any] = {}

    def plan_line(self) -> str:
        finished = len(self.cells) - len(self.pending)
        return f"{len(self.cells)} cells, {finished} finished, {len(self.pending)} to run"

    def write(self) -> dict[str, Any]:
        """results.json, results.csv and table.md in `output`, from every finished cell. The recorded cells are
        read again under a lock, so two grids writing into one output (other models or datasets, started side
        by side) keep each other's cells."""
        self.output.mkdir(parents=True, exist_ok=True)
        with FileLock(self.output / RESULTS_LOCK):
            self.recorded = self.recorded | read_recorded(self.output)
            self.results = write_results(
                self.cells, self.output, self.caption, self.models, self.published, self.meta, self.recorded
            )
        return self.results

    def rebuild(self) -> dict[str, Any]:
        """write() without training anything: the header keeps the command, date and machine that trained the
        cells (the earlier results.json's) and names this rebuild beside them."""
        if earlier := read_meta(self.output):
            self.meta = earlier | {"rebuilt": f"`{self.meta['command']}`, {self.meta['date']}"}
        return self.write()

    def run(self) -> GridOutcome:
        outcome = run_cells(self.pending, self.jobs, self.write, self.pack)
        self.write()
        return outcome


def run_benchmark(
    models: list[str], datasets: list[str], seeds: list[int], summary_only: bool = False, **settings: Any
) -> BenchmarkGrid:
    """Plan the grid (BenchmarkGrid's settings: runs, output, preset, overrides, jobs, threads, device, epochs,
    data_dir, reference, command, pack: cells trained together as one batched model, training/packed.py,
    order: ORDERS), train its unfinished cells unless `summary_only`, and write the results.
    Returns the grid: `.results` is the content of results.json, `.output` where the files are; a failed
    cell raises in this process (several jobs: see BenchmarkGrid.run)."""
    grid = BenchmarkGrid(models, datasets, seeds, **settings)
    if summary_only:
        grid.rebuild()
    else:
        log.info(grid.plan_line())
        outcome = grid.run()
        if outcome.failures:
            raise RuntimeError("failed cells: " + "; ".join(outcome.failures))
    return grid


def plan(
    models: list[str],
    datasets: list[str],
    seeds: list[int],
    runs: Path,
    preset: str | None,
    overrides: dict[str, Any],
    recorded: dict[str, dict[str, Any]] | None = None,
    order: str = "longest",
    **explicit: Any,
) -> tuple[list[dict[str, Any]], list[tuple[Cell, Path]]]:
    """(jobs still to run in `order`, every cell with its run directory). A cell is finished when its run ran
    to its end (RunDir.status) or `recorded` (tables.read_recorded) holds it; either is checked against the
    request."""
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ConfigError(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    if order not in ORDERS:
        raise ConfigError(f"--order: expected one of {', '.join(ORDERS)}, got {order!r}")
    jobs, cells, unchecked = [], [], []
    # every cell resolves the same precision (it depends on the device alone): the first one names it
    first = cell_config(Cell(models[0], datasets[0], seeds[0]), preset, overrides, seed=seeds[0], **explicit)
    tag = protocol_tag(overrides, preset, first.precision)
    for dataset in datasets:
        for model in models:
            for seed in seeds:
                cell = Cell(model, dataset, seed)
                config = cell_config(cell, preset, overrides, seed=seed, **explicit)
                run_dir = run_dir_of(runs, cell, tag)
                cells.append((cell, run_dir))
                if RunDir(run_dir).status == "finished":
                    saved, where = RunDir(run_dir).read_config(), run_dir
                elif (key := cell_key(run_dir)) in (recorded or {}):
                    saved, where = recorded[key]["config"], f"{recorded[key]['source']}: {key}"
                    if saved is None:
                        unchecked.append(key)
                else:
                    jobs.append({"cell": cell.__dict__, "run_dir": str(run_dir), "config": config.to_dict()})
                    continue
                if saved is not None and comparable(saved) != comparable(config.to_dict()):
                    raise ConfigError(
                        f"{where}: a finished run with other settings; use another --runs and --output"
                    )
    if unchecked:
        log.warning(
            "finished by the results file, which predates recorded settings: %s", ", ".join(unchecked)
        )
    if order != "given":
        sizes = {d: _dataset_size(d, explicit.get("data_dir")) for d in datasets}
        sign = -1 if order == "longest" else 1  # sorted() is stable: equal costs keep the given order
        jobs.sort(
            key=lambda j: sign * RELATIVE_COST.get(j["cell"]["model"], 1.0) * sizes[j["cell"]["dataset"]]
        )
    return jobs, cells


def _dataset_size(dataset: str, data_dir: str | None) -> float:
    try:
        return float(resolve_dataset(dataset, data_dir).num_interactions)
    except (ValueError, OSError):  # the run itself reports a dataset it cannot load
        return 1.0


def lock_file_of(run_dir: Path) -> Path:
    """Beside the run directory, not in it: an unusable run directory is deleted and started again."""
    return run_dir.parent / f".{run_dir.name}.lock"


def run_cell(job: dict[str, Any]) -> dict[str, Any] | None:
    """Train one cell (in this process or a worker); returns its test metrics, or None when another process
    holds the cell's lock (it is training that cell now)."""
    run_dir = Path(job["run_dir"])
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        held = FileLock(lock_file_of(run_dir), timeout=0).acquire()
    except Timeout:
        return None
    with held:
        return _train_cell(job)


def _train_cell(job: dict[str, Any]) -> dict[str, Any]:
    cell, run = Cell(**job["cell"]), RunDir(job["run_dir"])
    finished = run.finished_metrics()
    if finished is not None:  # finished by another process since the grid was planned
        return finished["test"]
    config = RunConfig.from_dict(job["config"])
    if config.threads:
        torch.set_num_threads(config.threads)
    unfinished = run.checkpoint_dir.is_dir() and run.status != "new"
    if unfinished and comparable(run.read_config()) == comparable(config.to_dict()):  # continue it
        runtime = {name: getattr(config, name) for name in RUNTIME_SETTINGS}
        rec = SequentialRecommender.resume(run.path, progress=False, **runtime)
        return rec.metrics["test"]
    if run.path.exists():  # an unfinished run without a usable checkpoint: start it again
        shutil.rmtree(run.path)
    data = resolve_dataset(cell.dataset, config.data_dir, kcore=config.kcore)
    features = read_run_item_features(config, data)
    rec = SequentialRecommender(config=config).fit(data, features, run_dir=run.path, progress=False)
    return rec.metrics["test"]


def pack_jobs(jobs: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """The pending cells in packs of up to `size` that can train as one batched model (training/packed.py):
    the same model, dataset and settings but for those a pack may vary. Cells that cannot be packed (their
    model, or item features) form packs of one."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        config = RunConfig.from_dict(job["config"])
        try:
            check_packable([config])
            shared = {k: v for k, v in comparable(job["config"]).items() if k not in PACKABLE}
            key = json.dumps([job["cell"]["dataset"], shared], sort_keys=True, default=str)
        except ConfigError:
            key = job["run_dir"]  # trained alone
        groups.setdefault(key, []).append(job)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def run_pack(pack: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Train a pack of cells (one: as run_cell does) in this process; each cell's test metrics, or None for
    a cell another process holds. A pack whose unfinished runs all hold checkpoints of their own settings
    continues from them (fit_packed decides whether they still make one pack); otherwise it starts anew."""
    if len(pack) == 1:
        return [run_cell(pack[0])]
    locks, taken, out = [], [], [None] * len(pack)
    try:
        for index, job in enumerate(pack):
            run = RunDir(job["run_dir"])
            run.path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(lock_file_of(run.path), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            locks.append(lock)
            finished = run.finished_metrics()
            if finished is not None:
                out[index] = finished["test"]
                continue
            taken.append(index)
        if taken:
            runs = [RunDir(pack[i]["run_dir"]) for i in taken]
            resume = all(
                run.checkpoint_dir.is_dir()
                and run.status != "new"
                and comparable(run.read_config()) == comparable(pack[i]["config"])
                for run, i in zip(runs, taken, strict=True)
            )
            for run in runs:
                if not resume and run.path.exists():
                    shutil.rmtree(run.path)
            configs = [RunConfig.from_dict(pack[i]["config"]) for i in taken]
            if configs[0].threads:
                torch.set_num_threads(configs[0].threads)
            cell = Cell(**pack[taken[0]]["cell"])
            data = resolve_dataset(cell.dataset, configs[0].data_dir, kcore=configs[0].kcore)
            recs = fit_packed(configs, data, [pack[i]["run_dir"] for i in taken], resume=resume)
            for i, rec in zip(taken, recs, strict=True):
                out[i] = rec.metrics["test"]
    finally:
        for lock in locks:
            lock.release()
    return out


def run_cells(
    jobs: list[dict[str, Any]], n_jobs: int, on_done: Callable[[], None], pack: int = 1
) -> GridOutcome:
    """Run the jobs, `n_jobs` packs of up to `pack` cells at a time in worker processes (1: in this process);
    `on_done()` after each finished cell."""
    outcome = GridOutcome()

    def finished(job, metrics=None, error=None):
        cell = job["cell"]
        name = f"{cell['model']} {cell['dataset']} seed {cell['seed']}"
        if error is not None:
            outcome.failures.append(f"{name}: {error}")
            log.error("failed: %s: %s", name, error)
        elif metrics is None:
            outcome.busy.append(name)
            log.warning("skipped: %s is being trained by another process (%s)", name, job["run_dir"])
            return
        else:
            log.info("done: %s  HR@10 %.4f  NDCG@10 %.4f", name, metrics["HR@10"], metrics["NDCG@10"])
        on_done()

    packs = pack_jobs(jobs, pack) if pack > 1 else [[job] for job in jobs]
    if n_jobs <= 1:
        for cells in packs:
            for job, metrics in zip(cells, run_pack(cells), strict=True):
                finished(job, metrics)
        return outcome
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n_jobs, mp_context=context) as pool:
        futures = {pool.submit(run_pack, cells): cells for cells in packs}
        for future in concurrent.futures.as_completed(futures):
            error = future.exception()
            for index, job in enumerate(futures[future]):
                finished(job, None if error else future.result()[index], error)
    return outcome
