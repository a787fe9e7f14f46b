"""`bsarec benchmark`: a grid of models x datasets x seeds, each a normal training run, and the paper-style table.

Every cell is a run directory RUNS/DATASET/MODEL/PROTOCOL/seedSEED (PROTOCOL is "paper" or the --set
overrides); a cell whose run ran to its end is skipped, and a cell that was cut off midway (killed, or stopped
by Ctrl-C) continues from its newest checkpoint, so an interrupted grid resumes where it stopped. A cell is
locked while it trains (a lock file beside its run directory, released by the OS if the process dies), so
several `bsarec benchmark` processes can share one runs directory: each skips the cells another is training.
The output's results.json is the record of the finished cells: a cell it holds (with its settings) stays
finished when its run directory is gone (a wiped scratch disk, a grid finished on another machine) and is not
trained again. After each finished cell the results are rewritten from every finished cell of the grid, its run
directory or its record:
- results.csv and results.json: per-seed test metrics, mean ± std per model and dataset, significance;
- table.md: the paper's layout (metrics as rows, models as columns, best mean in bold), the published BSARec
  numbers beside ours, and BSARec's relative improvement over the best baseline as the paper computes it,
  (BSARec - best baseline) / best baseline.
Significance: for BSARec against each baseline, a two-sided paired t-test over the seeds both finished (runs
with the same seed are paired; scipy.stats.ttest_rel), per metric. With 3 seeds only large, consistent
differences reach p < 0.05; the table says how many seeds BSARec won as well.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import logging
import multiprocessing
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bsarec.config import RUNTIME_SETTINGS, RunConfig, resolve_config
from bsarec.errors import ConfigError, DataError
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.models import DISPLAY_NAMES, MODELS

log = logging.getLogger("bsarec")
METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")
# rough relative cost per epoch on a CPU (LastFM, measured by `bsarec bench`), to start the slowest cells first
RELATIVE_COST = {"caser": 7.0, "fearec": 7.5, "duorec": 3.2, "bert4rec": 1.5}
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class Cell:
    model: str
    dataset: str
    seed: int


def protocol_tag(overrides: dict[str, Any]) -> str:
    """The run-directory name of a grid's overrides; runtime settings do not change what a cell is."""
    kept = {k: v for k, v in overrides.items() if k not in RUNTIME_SETTINGS}
    if not kept:
        return "paper"
    return ",".join(f"{k}={v}" for k, v in sorted(kept.items()))


def run_dir_of(runs: Path, cell: Cell, tag: str) -> Path:
    from bsarec.data.registry import dataset_name

    return runs / dataset_name(cell.dataset) / cell.model / tag / f"seed{cell.seed}"


def cell_key(run_dir: str | Path) -> str:
    """A cell's name in a results file, whatever --runs was: DATASET/MODEL/PROTOCOL/seedSEED."""
    return "/".join(Path(run_dir).parts[-4:])


def read_recorded(output: Path) -> dict[str, dict[str, Any]]:
    """The finished cells recorded in OUTPUT/results.json by an earlier write, by cell_key: {"row": per-seed
    row, "config": its settings, or None in a file written before the settings were recorded}."""
    path = Path(output) / RESULTS_FILE
    if not path.is_file():
        return {}
    try:
        result = json.loads(path.read_text())
        rows, configs = result["per_seed"], result.get("configs", {})
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: not a results file of bsarec benchmark ({error!r}); move it or choose another --output"
        ) from None
    recorded = {}
    for number, row in enumerate(rows):
        missing = [k for k in ("dataset", "model", "seed", "run_dir", *METRICS, "MRR") if k not in row]
        if missing:
            raise DataError(f"{path}: per_seed[{number}] lacks {', '.join(missing)}")
        key = cell_key(row["run_dir"])
        recorded[key] = {"row": row, "config": configs.get(key), "source": str(path)}
    return recorded


def cell_config(cell: Cell, preset: str | None, overrides: dict[str, Any], **explicit: Any) -> RunConfig:
    from bsarec.data.registry import dataset_name

    return resolve_config(cell.model, cell.dataset, dataset_name(cell.dataset), preset, overrides, **explicit)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that make a run what it is. A config.json written before a setting existed gets that
    setting's default, which is what the run used."""
    complete = RunConfig.from_dict(config).to_dict()
    return {k: v for k, v in complete.items() if k not in RUNTIME_SETTINGS}


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
    import torch

    from bsarec.api import METRICS_FILE, SequentialRecommender, finished_metrics
    from bsarec.data.registry import resolve_dataset

    cell, run_dir = Cell(**job["cell"]), Path(job["run_dir"])
    finished = finished_metrics(run_dir)
    if finished is not None:  # finished by another process since the grid was planned
        return finished["test"]
    config = RunConfig.from_dict(job["config"])
    if config.threads:
        torch.set_num_threads(config.threads)
    if (run_dir / "checkpoints").is_dir() and (run_dir / "config.json").is_file():
        saved = json.loads((run_dir / "config.json").read_text())
        if _comparable(saved) == _comparable(config.to_dict()):  # an unfinished run: continue it
            runtime = {name: getattr(config, name) for name in RUNTIME_SETTINGS}
            rec = SequentialRecommender.resume(run_dir, progress=False, **runtime)
            return rec.metrics["test"]
    if run_dir.exists():  # an unfinished run without a usable checkpoint: start it again
        shutil.rmtree(run_dir)
    data = resolve_dataset(cell.dataset, config.data_dir, kcore=config.kcore)
    rec = SequentialRecommender(config=config).fit(data, run_dir=run_dir, progress=False)
    assert (run_dir / METRICS_FILE).is_file()
    return rec.metrics["test"]


def plan(
    models: list[str],
    datasets: list[str],
    seeds: list[int],
    runs: Path,
    preset: str | None,
    overrides: dict[str, Any],
    recorded: dict[str, dict[str, Any]] | None = None,
    **explicit: Any,
) -> tuple[list[dict[str, Any]], list[tuple[Cell, Path]]]:
    """(jobs still to run, every cell with its run directory). A cell is finished when its run ran to its end
    (api.finished_metrics) or `recorded` (read_recorded) holds it; either is checked against the request."""
    from bsarec.api import finished_metrics

    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ConfigError(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    tag = protocol_tag(overrides)
    jobs, cells, unchecked = [], [], []
    for dataset in datasets:
        for model in models:
            for seed in seeds:
                cell = Cell(model, dataset, seed)
                run_dir = run_dir_of(runs, cell, tag)
                config = cell_config(cell, preset, overrides, seed=seed, **explicit)
                cells.append((cell, run_dir))
                if finished_metrics(run_dir) is not None:
                    saved, where = json.loads((run_dir / "config.json").read_text()), run_dir
                elif (key := cell_key(run_dir)) in (recorded or {}):
                    saved, where = recorded[key]["config"], f"{recorded[key]['source']}: {key}"
                    if saved is None:
                        unchecked.append(key)
                else:
                    jobs.append({"cell": cell.__dict__, "run_dir": str(run_dir), "config": config.to_dict()})
                    continue
                if saved is not None and _comparable(saved) != _comparable(config.to_dict()):
                    raise ConfigError(
                        f"{where}: a finished run with other settings; use another --runs and --output"
                    )
    if unchecked:
        log.warning(
            "finished by the results file, which predates recorded settings: %s", ", ".join(unchecked)
        )
    sizes = {d: _dataset_size(d, explicit.get("data_dir")) for d in datasets}
    jobs.sort(key=lambda j: -RELATIVE_COST.get(j["cell"]["model"], 1.0) * sizes[j["cell"]["dataset"]])
    return jobs, cells


def _dataset_size(dataset: str, data_dir: str | None) -> float:
    from bsarec.data.registry import resolve_dataset

    try:
        return float(resolve_dataset(dataset, data_dir).num_interactions)
    except Exception:  # the run itself reports a dataset it cannot load
        return 1.0


@dataclass
class GridOutcome:
    failures: list[str]  # "cell: error"
    busy: list[str]  # cells skipped because another process is training them


def run_grid(
    jobs: list[dict[str, Any]],
    n_jobs: int,
    on_done,
) -> GridOutcome:
    """Run the jobs, `n_jobs` at a time in worker processes (1: in this process)."""
    outcome = GridOutcome([], [])

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

    if n_jobs <= 1:
        for job in jobs:
            finished(job, run_cell(job))
        return outcome
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n_jobs, mp_context=context) as pool:
        futures = {pool.submit(run_cell, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            error = future.exception()
            finished(futures[future], None if error else future.result(), error)
    return outcome


# -- results ------------------------------------------------------------------------------------------------


def load_published(path: str | Path | None = None) -> dict[str, Any]:
    if path is not None:
        return json.loads(Path(path).read_text())
    return json.loads(resources.files("bsarec").joinpath("presets/published.json").read_text())


def collect(
    cells: list[tuple[Cell, Path]], recorded: dict[str, dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any] | None]]:
    """(per-seed rows, each row's settings by cell_key) of the finished cells: from the run directory where it
    has metrics.json, else from `recorded`. A run stopped by Ctrl-C is left out."""
    from bsarec.api import finished_metrics
    from bsarec.data.registry import dataset_name

    rows, configs = [], {}
    for cell, run_dir in cells:
        key = cell_key(run_dir)
        m = finished_metrics(run_dir)
        if m is None:
            if (run_dir / "metrics.json").is_file():
                log.warning("%s: stopped by Ctrl-C, left out until the grid continues it", run_dir)
            elif key in (recorded or {}):
                rows.append(recorded[key]["row"])
                configs[key] = recorded[key]["config"]
            continue
        config = json.loads((run_dir / "config.json").read_text())
        rows.append(
            {
                "dataset": dataset_name(cell.dataset),
                "model": cell.model,
                "seed": cell.seed,
                **{k: m["test"][k] for k in (*METRICS, "MRR")},
                "best_epoch": m["best_epoch"],
                "epochs": m["epochs"],
                "train_seconds": round(m["train_seconds"], 1),
                "device": config.get("device", "cpu"),
                "run_dir": str(run_dir),
            }
        )
        configs[key] = _comparable(config)
    return rows, configs


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    summary: dict = {}
    for row in rows:
        summary.setdefault(row["dataset"], {}).setdefault(row["model"], []).append(row)
    out: dict = {}
    for dataset, by_model in summary.items():
        out[dataset] = {}
        for model, runs in by_model.items():
            out[dataset][model] = {
                metric: {
                    "mean": statistics.fmean(r[metric] for r in runs),
                    "std": statistics.stdev([r[metric] for r in runs]) if len(runs) > 1 else 0.0,
                    "n": len(runs),
                }
                for metric in (*METRICS, "MRR")
            }
    return out


def significance(rows: list[dict[str, Any]], target: str = "bsarec") -> dict[str, Any]:
    """BSARec against each baseline: paired t-test over shared seeds, wins, relative improvement of means."""
    from scipy import stats

    by_key = {(r["dataset"], r["model"], r["seed"]): r for r in rows}
    out: dict = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        out[dataset] = {}
        for model in sorted({r["model"] for r in rows if r["dataset"] == dataset} - {target}):
            seeds = sorted(
                s for (d, m, s) in by_key if d == dataset and m == model and (d, target, s) in by_key
            )
            result = {"seeds": seeds}
            for metric in METRICS:
                ours = [by_key[(dataset, target, s)][metric] for s in seeds]
                theirs = [by_key[(dataset, model, s)][metric] for s in seeds]
                entry: dict[str, Any] = {"wins": sum(a > b for a, b in zip(ours, theirs, strict=True))}
                if seeds:
                    base = statistics.fmean(theirs)
                    entry["improvement_pct"] = 100 * (statistics.fmean(ours) - base) / base if base else None
                if len(seeds) >= 2:
                    diffs = [a - b for a, b in zip(ours, theirs, strict=True)]
                    if any(d != diffs[0] for d in diffs):
                        test = stats.ttest_rel(ours, theirs)
                        entry["t"], entry["p"] = float(test.statistic), float(test.pvalue)
                result[metric] = entry
            out[dataset][model] = result
    return out


def _fmt(stat: dict[str, float] | None, seeds: int = 1) -> str:
    """mean ± std, with the number of seeds when fewer than the table's `seeds` finished."""
    if not stat:
        return "–"
    text = f"{stat['mean']:.4f} ± {stat['std']:.4f}" if stat["n"] > 1 else f"{stat['mean']:.4f}"
    return text + (f" (n={stat['n']})" if stat["n"] < seeds else "")


def markdown_table(
    summary: dict,
    tests: dict,
    published: dict,
    caption: str,
    models: list[str],
    target: str = "bsarec",
) -> str:
    lines = [caption, ""]
    published_key = "full"
    for dataset, by_model in summary.items():
        present = [m for m in models if m in by_model]
        baselines = [m for m in present if m != target]
        pub = published.get(published_key, {}).get(target, {}).get(dataset, {})
        header = ["metric", *(DISPLAY_NAMES[m] for m in present)]
        if pub:
            header.append("BSARec (published)")
        if target in by_model and baselines:
            header.append("Improv. vs best baseline")
        lines += [f"### {dataset}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        seeds = max(by_model[m][METRICS[0]]["n"] for m in present)
        for metric in METRICS:
            best = max(present, key=lambda m: by_model[m][metric]["mean"])
            cells = [metric]
            for m in present:
                text = _fmt(by_model[m][metric], seeds)
                cells.append(f"**{text}**" if m == best and len(present) > 1 else text)
            if pub:
                cells.append(f"{pub[metric]:.4f}" if pub.get(metric) is not None else "–")
            if target in by_model and baselines:
                runner = max(baselines, key=lambda m: by_model[m][metric]["mean"])
                base = by_model[runner][metric]["mean"]
                gain = 100 * (by_model[target][metric]["mean"] - base) / base if base else float("nan")
                cells.append(f"{gain:+.1f}% (vs {DISPLAY_NAMES[runner]})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if dataset in tests and tests[dataset]:
            lines += [
                f"BSARec vs each baseline on {dataset}: relative improvement of the mean, seeds won, paired "
                "t-test p (two-sided, over shared seeds)",
                "",
                "| baseline | seeds | " + " | ".join(METRICS) + " |",
                "|---" * (len(METRICS) + 2) + "|",
            ]
            for model, result in tests[dataset].items():
                cells = [DISPLAY_NAMES[model], str(len(result["seeds"]))]
                for metric in METRICS:
                    e = result[metric]
                    text = f"{e['improvement_pct']:+.1f}%" if e.get("improvement_pct") is not None else "–"
                    text += f", {e['wins']}/{len(result['seeds'])}"
                    if "p" in e:
                        text += f", p={e['p']:.3f}"
                    cells.append(text)
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def caption_for(overrides: dict[str, Any], preset: str | None, seeds: list[int], config: RunConfig) -> str:
    candidates = (
        "full ranking" if config.candidates == "full" else f"{config.candidates} ({config.eval_negatives})"
    )
    return (
        f"Test metrics, mean ± std over seeds {', '.join(map(str, seeds))}; preset {preset or 'defaults'}; "
        f"protocol: candidates {candidates}, history mask {config.history_mask}, padding {config.padding}, "
        f"early stopping on validation {config.monitor} (patience {config.patience})"
        + (f"; overrides {protocol_tag(overrides)}" if overrides else "")
        + ". Best mean per metric in bold."
    )


def write_results(
    cells: list[tuple[Cell, Path]],
    output: Path,
    caption: str,
    models: list[str],
    published: dict[str, Any],
    meta: dict[str, Any],
    recorded: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """results.json (rows, summary, significance, and each cell's settings: the record read_recorded reads),
    results.csv and table.md, from the finished cells (run directories first, then `recorded`)."""
    rows, configs = collect(cells, recorded)
    summary = summarise(rows)
    tests = significance(rows) if any(r["model"] == "bsarec" for r in rows) else {}
    result = {"meta": meta, "caption": caption, "per_seed": rows, "summary": summary, "significance": tests}
    result["configs"] = configs
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / RESULTS_FILE, result)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(output / "results.csv", buffer.getvalue())
    header = f"`{meta['command']}` — {meta['date']} — {meta['machine']}\n\n"
    atomic_write_text(
        output / "table.md", header + markdown_table(summary, tests, published, caption, models)
    )
    return result


def provenance() -> dict[str, str]:
    """The command line, UTC date and machine of a benchmark script's run, for its result files."""
    return {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(),
    }


def machine_line() -> str:
    from bsarec.api import environment

    env = environment()
    return f"{env['machine']}, {env['cpu_count']} cores, torch {env['torch']}, {time.strftime('%Y-%m-%d')}"
