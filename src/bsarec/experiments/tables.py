"""The results of a benchmark grid: per-seed rows from the finished cells, mean ± std, paired significance
tests of BSARec against each baseline, and results.json / results.csv / table.md.

Significance: for BSARec against each baseline, a two-sided paired t-test over the seeds both finished (runs
with the same seed are paired; scipy.stats.ttest_rel), per metric. With 3 seeds only large, consistent
differences reach p < 0.05; the table says how many seeds BSARec won as well. The table has the paper's layout
(metrics as rows, models as columns, best mean in bold), the published numbers of every model that has them
(BSARec, TV-Rec, WEARec) beside ours, and BSARec's relative improvement over the best baseline as the paper
computes it, (BSARec - best baseline) / best baseline.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from bsarec.config import RunConfig
from bsarec.data.registry import dataset_name
from bsarec.errors import DataError
from bsarec.experiments.cells import Cell, cell_key, comparable, protocol_tag
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.models import DISPLAY_NAMES, MODELS
from bsarec.run_dir import RunDir

log = logging.getLogger("bsarec")
METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")
RESULTS_FILE = "results.json"
RESULTS_LOCK = "results.json.lock"  # held while results.json is read and rewritten (experiments/grid.py)


def load_published(path: str | Path | None = None) -> dict[str, Any]:
    if path is not None:
        return json.loads(Path(path).read_text())
    return json.loads(resources.files("bsarec").joinpath("presets/published.json").read_text())


def _read_results_file(output: Path) -> tuple[Path, dict[str, Any]] | None:
    """(path, content) of OUTPUT/results.json as write_results writes it, or None when there is none."""
    path = Path(output) / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
        problem = None if isinstance(result, dict) and "per_seed" in result else "no per_seed list"
    except ValueError as error:
        problem = repr(error)
    if problem:
        raise DataError(
            f"{path}: not a results file of bsarec benchmark ({problem}); move it or choose another --output"
        )
    return path, result


def read_meta(output: Path) -> dict[str, Any] | None:
    """The command, date and machine recorded in OUTPUT/results.json by an earlier write, or None."""
    found = _read_results_file(output)
    meta = found[1].get("meta") if found else None
    return meta if isinstance(meta, dict) and {"command", "date", "machine"} <= meta.keys() else None


def read_recorded(output: Path) -> dict[str, dict[str, Any]]:
    """The finished cells recorded in OUTPUT/results.json by an earlier write, by cell_key: {"row": per-seed
    row, "config": its settings, or None in a file written before the settings were recorded}."""
    found = _read_results_file(output)
    if found is None:
        return {}
    path, result = found
    rows, configs = result["per_seed"], result.get("configs", {})
    recorded = {}
    for number, row in enumerate(rows):
        missing = [k for k in ("dataset", "model", "seed", "run_dir", *METRICS, "MRR") if k not in row]
        if missing:
            raise DataError(f"{path}: per_seed[{number}] lacks {', '.join(missing)}")
        key = cell_key(row["run_dir"])
        recorded[key] = {"row": row, "config": configs.get(key), "source": str(path)}
    return recorded


def collect(
    cells: list[tuple[Cell, Path]], recorded: dict[str, dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any] | None]]:
    """(per-seed rows, each row's settings by cell_key) of the finished cells: from the run directory where it
    has metrics.json, else from `recorded`. A run stopped by Ctrl-C is left out. The recorded cells that
    `cells` do not hold are kept (a grid run for some of its seeds or models loses none of the others)."""
    rows, configs = [], {}
    for cell, run_dir in cells:
        key, run = cell_key(run_dir), RunDir(run_dir)
        status = run.status
        if status != "finished":
            if status == "interrupted":
                log.warning("%s: stopped by Ctrl-C, left out until the grid continues it", run_dir)
            elif key in (recorded or {}):
                rows.append(recorded[key]["row"])
                configs[key] = recorded[key]["config"]
            continue
        m, config = run.finished_metrics(), run.read_config()
        rows.append(
            {
                "dataset": dataset_name(cell.dataset),
                "model": cell.model,
                "seed": cell.seed,
                **{k: m["test"][k] for k in (*METRICS, "MRR")},
                **{f"valid_{k}": m["valid"][k] for k in (*METRICS, "MRR")},  # what a selection may look at
                **{  # the cold-start evaluation's groups (docs/item_features.md)
                    f"{group}_{k}": v
                    for group, values in m.get("test_by_item_group", {}).items()
                    for k, v in values.items()
                },
                "best_epoch": m["best_epoch"],
                "epochs": m["epochs"],
                "train_seconds": round(m["train_seconds"], 1),
                "device": config.get("device", "cpu"),
                "run_dir": str(run_dir),
            }
        )
        configs[key] = comparable(config)
    planned = {cell_key(run_dir) for _, run_dir in cells}
    for key, entry in (recorded or {}).items():
        if key not in planned:
            rows.append(entry["row"])
            configs[key] = entry["config"]
    # datasets in the order of the recorded file, then of this grid; models in one order (model_order), so a
    # table reads the same whichever grids filled it and in what order
    recorded_rows = [entry["row"] for entry in (recorded or {}).values()]
    datasets = list(dict.fromkeys(r["dataset"] for r in [*recorded_rows, *rows]))
    models = model_order([r["model"] for r in [*recorded_rows, *rows]])
    rows.sort(key=lambda r: (datasets.index(r["dataset"]), models.index(r["model"]), r["seed"]))
    return rows, configs


def model_order(names: list[str]) -> list[str]:
    """The distinct `names` in the order every table lists models: BSARec, the paper's baselines in its
    table's order, the frontier (the registry's order, bsarec.models.MODELS), then any other in `names`' order."""
    known = list(MODELS)
    distinct = list(dict.fromkeys(names))
    return sorted(
        distinct, key=lambda n: (known.index(n), 0) if n in known else (len(known), distinct.index(n))
    )


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
    """BSARec against each baseline: paired t-test over shared seeds, wins, relative improvement of means, on
    every dataset where BSARec has results (elsewhere there is nothing to compare)."""
    datasets = sorted({r["dataset"] for r in rows if r["model"] == target})
    if not datasets:
        return {}
    from scipy import stats  # 0.7 s to import: loaded when a table needs its t-tests, not by every command

    by_key = {(r["dataset"], r["model"], r["seed"]): r for r in rows}
    out: dict = {}
    for dataset in datasets:
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
    notes: dict[str, str] | None = None,
) -> str:
    """The paper-style table per dataset, each with `notes[dataset]` (if any) under its heading."""
    lines = [caption, ""]
    published_key = "full"
    for dataset, by_model in summary.items():
        present = [m for m in models if m in by_model]
        baselines = [m for m in present if m != target]
        pub = {
            m: published[published_key][m][dataset]
            for m in present
            if dataset in published.get(published_key, {}).get(m, {})
        }
        header = ["metric", *(DISPLAY_NAMES[m] for m in present)]
        header += [f"{DISPLAY_NAMES[m]} (published)" for m in pub]
        if target in by_model and baselines:
            header.append("Improv. vs best baseline")
        lines += [f"### {dataset}", ""]
        if notes and notes.get(dataset):
            lines += [notes[dataset], ""]
        lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        seeds = max(by_model[m][METRICS[0]]["n"] for m in present)
        for metric in METRICS:
            best = max(present, key=lambda m: by_model[m][metric]["mean"])
            cells = [metric]
            for m in present:
                text = _fmt(by_model[m][metric], seeds)
                cells.append(f"**{text}**" if m == best and len(present) > 1 else text)
            for numbers in pub.values():
                cells.append(f"{numbers[metric]:.4f}" if numbers.get(metric) is not None else "–")
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


def published_left_out(config: RunConfig) -> str | None:
    """Why the paper's published numbers do not belong beside a grid run with `config`, or None when they do:
    they were measured on every item's training data and ranked against all items."""
    if config.cold_items:
        return f"cold_items={config.cold_items:g} withholds items from training"
    if config.candidates != "full":
        return "they rank all items, this grid sampled candidates"
    return None


def caption_for(overrides: dict[str, Any], preset: str | None, seeds: list[int], config: RunConfig) -> str:
    tag = protocol_tag(overrides)  # runtime settings (threads, checkpoint_steps, ...) change no result
    if reason := published_left_out(config):
        published = f" Published numbers left out: {reason}."
    elif tag != "paper":  # the published columns stand beside a changed setting
        published = " Published numbers: each paper's run at its own settings, not these overrides."
    else:
        published = ""
    candidates = (
        "full ranking" if config.candidates == "full" else f"{config.candidates} ({config.eval_negatives})"
    )
    return (
        f"Test metrics, mean ± std over seeds {', '.join(map(str, seeds))}; preset {preset or 'defaults'}; "
        f"protocol: candidates {candidates}, history mask {config.history_mask}, padding {config.padding}, "
        f"early stopping on validation {config.monitor} (patience {config.patience})"
        + (f"; overrides {tag}" if tag != "paper" else "")
        + (f"; {config.precision} arithmetic" if config.precision != "fp32" else "")
        + ". Best mean per metric in bold."
        + published
    )


def write_results(
    cells: list[tuple[Cell, Path]],
    output: Path,
    caption: Callable[[list[int]], str],
    models: list[str],
    published: dict[str, Any],
    meta: dict[str, Any],
    recorded: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """results.json (rows, summary, significance, and each cell's settings: the record read_recorded reads),
    results.csv and table.md, from the finished cells (run directories first, then `recorded`, collect);
    `caption(seeds)` describes the table of the rows' seeds."""
    rows, configs = collect(cells, recorded)
    models = model_order([*(r["model"] for r in rows), *models])
    caption = caption(sorted({r["seed"] for r in rows}))
    summary = summarise(rows)
    tests = significance(rows)
    result = {"meta": meta, "caption": caption, "per_seed": rows, "summary": summary, "significance": tests}
    result["configs"] = configs
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / RESULTS_FILE, result)
    buffer = io.StringIO()
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))  # rows recorded earlier may lack some
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(output / "results.csv", buffer.getvalue())
    rebuilt = f" (tables rebuilt from the recorded results by {meta['rebuilt']})" if "rebuilt" in meta else ""
    header = f"`{meta['command']}` — {meta['date']} — {meta['machine']}{rebuilt}\n\n"
    atomic_write_text(
        output / "table.md", header + markdown_table(summary, tests, published, caption, models)
    )
    return result
