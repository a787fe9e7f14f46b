"""`bsarec benchmark`: a grid of models x datasets x seeds, each a normal training run, and the paper-style table.

Every cell is a run directory RUNS/DATASET/MODEL/PROTOCOL/seedSEED (PROTOCOL is "paper" or the --set
overrides); a cell whose metrics.json exists is skipped, and a cell that was cut off midway continues from its
newest checkpoint, so an interrupted grid resumes where it stopped. A cell is locked while it trains (a lock file
beside its run directory, released by the OS if the process dies), so several `bsarec benchmark` processes can
share one runs directory: each skips the cells another is training. After each finished cell the results are
rewritten from every finished run of the grid:
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
from bsarec.errors import ConfigError
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.models import DISPLAY_NAMES, MODELS

log = logging.getLogger("bsarec")
METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")
# rough relative cost per epoch on a CPU (LastFM, measured by `bsarec bench`), to start the slowest cells first
RELATIVE_COST = {"caser": 7.0, "fearec": 7.5, "duorec": 3.2, "bert4rec": 1.5}


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

    from bsarec.api import METRICS_FILE, SequentialRecommender
    from bsarec.data.registry import resolve_dataset

    cell, run_dir = Cell(**job["cell"]), Path(job["run_dir"])
    if (run_dir / METRICS_FILE).is_file():  # finished by another process since the grid was planned
        return json.loads((run_dir / METRICS_FILE).read_text())["test"]
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
    **explicit: Any,
) -> tuple[list[dict[str, Any]], list[tuple[Cell, Path]]]:
    """(jobs still to run, every cell with its run directory). Checks finished runs against the request."""
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ConfigError(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    tag = protocol_tag(overrides)
    jobs, cells = [], []
    for dataset in datasets:
        for model in models:
            for seed in seeds:
                cell = Cell(model, dataset, seed)
                run_dir = run_dir_of(runs, cell, tag)
                config = cell_config(cell, preset, overrides, seed=seed, **explicit)
                cells.append((cell, run_dir))
                if (run_dir / "metrics.json").is_file():
                    saved = json.loads((run_dir / "config.json").read_text())
                    if _comparable(saved) != _comparable(config.to_dict()):
                        raise ConfigError(
                            f"{run_dir}: a finished run with other settings; use another --runs directory"
                        )
                    continue
                jobs.append({"cell": cell.__dict__, "run_dir": str(run_dir), "config": config.to_dict()})
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


def collect(cells: list[tuple[Cell, Path]]) -> list[dict[str, Any]]:
    from bsarec.data.registry import dataset_name

    rows = []
    for cell, run_dir in cells:
        metrics_file = run_dir / "metrics.json"
        if not metrics_file.is_file():
            continue
        m = json.loads(metrics_file.read_text())
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
    return rows


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
) -> dict[str, Any]:
    rows = collect(cells)
    summary = summarise(rows)
    tests = significance(rows) if any(r["model"] == "bsarec" for r in rows) else {}
    result = {"meta": meta, "caption": caption, "per_seed": rows, "summary": summary, "significance": tests}
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / "results.json", result)
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
