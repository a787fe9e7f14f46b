"""One row per dataset across the paper-table grids: which model is best by its 3-seed mean, and whether
BSARec's lead over the best of the paper's seven baselines is significant (paired t-test over the shared
seeds), against the paper's claim that BSARec is best on every dataset.

Reads the results.json of the grids `baselines-lastfm`, `baselines-beauty`(`-rest`), `baselines-toys` and
`baselines-sports-yelp` (benchmarks/grids.sh); a model counts for "best" only with 3 seeds, and a dataset whose
BSARec or best baseline has fewer says so instead of a test.

    python benchmarks/summarize_datasets.py            # writes benchmarks/results/summary_datasets.{md,json}

It also writes every dataset's table in the paper's layout (all six metrics, mean ± std, the published numbers
beside ours, BSARec's paired tests against each model) to benchmarks/results/paper_tables.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bsarec.config import defaults_stand_in
from bsarec.environment import provenance
from bsarec.experiments.tables import load_published, markdown_table, model_order, significance, summarise
from bsarec.io import atomic_write_json, atomic_write_text
from choose_best import mean_std, recorded_cells, replace_marked, search, seed_rows  # this directory's script

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
GRIDS = ("baselines/LastFM", "baselines/Beauty", "baselines/Toys_and_Games", "baselines/Sports_Yelp")
DATASETS = ("LastFM", "Beauty", "Toys_and_Games", "Sports_and_Outdoors", "Yelp")
NOT_HERE = {  # the paper's sixth dataset: its raw ratings cannot be downloaded on the project's machines
    "ML-1M": "not run here (its ratings cannot be downloaded on the project's machines): bsarec benchmark -d ML-1M -m "
    "bsarec,caser,gru4rec,sasrec,bert4rec,fmlprec,duorec,fearec,tvrec,wearec --seeds 42,43,44"
}
PAPER_BASELINES = ("caser", "gru4rec", "sasrec", "bert4rec", "fmlprec", "duorec", "fearec")
NAMES = {
    "bsarec": "BSARec",
    "caser": "Caser",
    "gru4rec": "GRU4Rec",
    "sasrec": "SASRec",
    "bert4rec": "BERT4Rec",
    "fmlprec": "FMLPRec",
    "duorec": "DuoRec",
    "fearec": "FEARec",
    "tvrec": "TV-Rec",
    "wearec": "WEARec",
}
SEEDS = 3


def read_rows(results: Path) -> list[dict]:
    """Every finished cell of the grids, once."""
    rows: dict[tuple, dict] = {}
    for grid in GRIDS:
        path = results / grid / "results.json"
        if path.is_file():
            for row in json.loads(path.read_text())["per_seed"]:
                rows[(row["dataset"], row["model"], row["seed"])] = row
    return list(rows.values())


def mean_of(rows: list[dict], model: str, metric: str) -> tuple[float, int]:
    values = [r[metric] for r in rows if r["model"] == model]
    return (statistics.fmean(values) if values else float("nan")), len(values)


def summarize(rows: list[dict], metric: str) -> list[dict]:
    out = []
    for dataset in (*DATASETS, *NOT_HERE):
        here = [r for r in rows if r["dataset"] == dataset]
        if not here:
            out.append({"dataset": dataset, "status": "not run here" if dataset in NOT_HERE else "not run"})
            continue
        models = sorted({r["model"] for r in here})
        means = {m: mean_of(here, m, metric) for m in models}
        complete = {m: v for m, (v, n) in means.items() if n >= SEEDS}
        best = max(complete, key=complete.get) if complete else None
        baselines = {m: v for m, v in complete.items() if m in PAPER_BASELINES}
        baseline = max(baselines, key=baselines.get) if baselines else None
        row = {
            "dataset": dataset,
            "models": {m: n for m, (_, n) in means.items()},
            "best": best,
            "best_mean": complete.get(best),
            "bsarec_mean": means.get("bsarec", (None, 0))[0],
            "bsarec_seeds": means.get("bsarec", (None, 0))[1],
            "best_baseline": baseline,
            "best_baseline_mean": baselines.get(baseline),
            "missing_baselines": [m for m in PAPER_BASELINES if means.get(m, (0, 0))[1] < SEEDS],
        }
        if baseline is not None and row["bsarec_seeds"] >= SEEDS:
            test = significance([r for r in here if r["model"] in ("bsarec", baseline)])[dataset][baseline]
            row["lead_pct"] = test[metric].get("improvement_pct")
            row["p"] = test[metric].get("p")
            row["wins"] = test[metric]["wins"]
        out.append(row)
    return out


def claim(row: dict) -> str:
    """Whether the paper's claim (BSARec beats the seven baselines) holds on a row's dataset. One baseline
    ahead of BSARec settles "does not hold"; a lead is only provisional while some of the seven lack 3 seeds."""
    if "lead_pct" not in row:
        return "not testable yet"
    significant = row.get("p") is not None and row["p"] < 0.05
    if row["lead_pct"] <= 0:
        leader = NAMES[row["best_baseline"]]
        return f"does not hold ({leader} leads{'' if significant else ', not significantly'})"
    verdict = "holds" if significant else "BSARec leads, not significantly"
    if row["missing_baselines"]:
        ran = len(PAPER_BASELINES) - len(row["missing_baselines"])
        verdict += f" so far (only {with_seeds(ran, 'seven baselines')})"
    return verdict


def best_model(row: dict, none: str) -> str:
    """The best model of a row's dataset and its mean; provisional while some of the ten lack 3 seeds."""
    if not row["best"]:
        return none
    complete = sum(n >= SEEDS for m, n in row["models"].items() if m in NAMES)
    so_far = f" (so far: {with_seeds(complete, 'ten')})" if complete < len(NAMES) else ""
    return f"{NAMES[row['best']]} {row['best_mean']:.4f}{so_far}"


def with_seeds(count: int, among: str) -> str:
    """How many of a group have 3 seeds: "1 of the ten has 3 seeds", "2 of the seven baselines have 3 seeds"."""
    return f"{count} of the {among} {'has' if count == 1 else 'have'} {SEEDS} seeds"


def markdown(summary: list[dict], metric: str) -> list[str]:
    lines = [
        f"| dataset | best model by 3-seed mean {metric} | BSARec | best of the seven paper baselines | BSARec's "
        "lead over it | paired t-test p (seeds won) | the paper's claim: BSARec beats the seven |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        if row.get("status") == "not run":
            lines.append(f"| {row['dataset']} | not run | | | | | |")
            continue
        if row.get("status") == "not run here":
            lines.append(f"| {row['dataset']} | {NOT_HERE[row['dataset']]} | | | | | |")
            continue
        best = best_model(row, "no model with 3 seeds")
        seeds = row["bsarec_seeds"]
        bsarec = f"{row['bsarec_mean']:.4f} ({seeds} seed{'s' if seeds > 1 else ''})" if seeds else "–"
        baseline = (
            f"{NAMES[row['best_baseline']]} {row['best_baseline_mean']:.4f}"
            if row["best_baseline"]
            else "none with 3 seeds"
        )
        if "lead_pct" in row:
            p = f"{row['p']:.3f}" if row.get("p") is not None else "–"
            lead, test = f"{row['lead_pct']:+.1f}%", f"{p} ({row['wins']} of {SEEDS})"
        else:
            lead, test = "–", "–"
        holds = claim(row)
        lines.append(f"| {row['dataset']} | {best} | {bsarec} | {baseline} | {lead} | {test} | {holds} |")
    missing = [
        f"{r['dataset']}: {', '.join(NAMES[m] for m in r['missing_baselines'])}"
        for r in summary
        if r.get("missing_baselines")
    ]
    if missing:
        lines += ["", 'Baselines with fewer than 3 seeds (left out of "best"): ' + "; ".join(missing) + "."]
    return lines


def dataset_notes(rows: list[dict]) -> dict[str, str]:
    """Per dataset: the models that run at their reference defaults there because their authors published
    settings for other datasets only (the paper preset's "*" entry, docs/baselines.md), and the cells trained
    on another device than the CPU (the same code rounds differently there)."""
    notes = {}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        here = [r for r in rows if r["dataset"] == dataset]
        lines = []
        stand_ins = [
            NAMES[m] for m in model_order([r["model"] for r in here]) if defaults_stand_in(m, dataset)
        ]
        if stand_ins:
            lines.append(
                f"{' and '.join(stand_ins)}: no published setting for {dataset}, so "
                f"{'their' if len(stand_ins) > 1 else 'its'} reference code's defaults."
            )
        elsewhere = [r for r in here if r.get("device", "cpu") != "cpu"]
        if elsewhere:
            cells = ", ".join(f"{NAMES[r['model']]} seed {r['seed']} ({r['device']})" for r in elsewhere)
            lines.append(f"Trained on a GPU, the other cells on the CPU: {cells}.")
        if lines:
            notes[dataset] = " ".join(lines)
    return notes


def paper_tables(body: str, where: dict[str, str]) -> str:
    """results/paper_tables.md: the provenance header, then the tables (paper_tables_body)."""
    header = (
        f"# The paper's table, per dataset\n\n`{where['command']}` — {where['date']} — {where['machine']}"
    )
    return f"{header}\n\n{body}"


def paper_tables_body(rows: list[dict]) -> str:
    """One table per dataset in the paper's layout, the datasets in DATASETS' order."""
    ordered = sorted(rows, key=lambda r: (DATASETS.index(r["dataset"]), r["model"], r["seed"]))
    caption = (
        "Test metrics, mean ± std over the seeds each model ran (n= when fewer than the dataset's most), paper "
        "presets and protocol (docs/protocol.md); published: each paper's single run. Best mean per metric in "
        "bold; the improvement is BSARec's over the best other model."
    )
    return markdown_table(
        summarise(ordered), significance(ordered), load_published(), caption,
        model_order([r["model"] for r in ordered]), notes=dataset_notes(ordered),
    )  # fmt: skip


def recommenders(metric: str) -> dict[str, str]:
    """Per dataset: bsarec's best recommender (benchmarks/choose_best.py) and its test metric over its seeds."""
    cells = recorded_cells()
    out = {}
    for dataset in DATASETS:
        found = search(dataset, cells)
        if not found.complete:
            ran = sum(c.score is not None for c in found.candidates)
            out[dataset] = f"search not complete ({ran} of its {len(found.candidates)} candidates so far)"
            continue
        chosen = found.chosen
        values = [row[metric] for row in seed_rows(dataset, chosen, cells).values()]
        name = f"{NAMES[chosen.model]}, " + ", ".join(f"{k} {v}" for k, v in chosen.settings.items())
        mean, std = mean_std(values)
        spread = f" ± {std:.4f}" if len(values) > 1 else ""
        seeds = f"{len(values)} seeds" if len(values) > 1 else "1 seed so far"
        out[dataset] = f"{name}: {mean:.4f}{spread} ({seeds})"
    return out


def readme_table(summary: list[dict], metric: str) -> str:
    """The README's results: one row per dataset."""
    chosen = recommenders(metric)
    lines = [
        f"| dataset | best of the ten models (3-seed mean {metric}) | BSARec against the best of the seven "
        f"baselines | bsarec's best recommender, chosen on validation (test {metric}) |",
        "|---|---|---|---|",
    ]
    for row in summary:
        dataset = row["dataset"]
        if dataset in NOT_HERE:
            continue
        if row.get("status") == "not run":
            lines.append(f"| {dataset} | not run yet | – | {chosen[dataset]} |")
            continue
        best = best_model(row, "no model with 3 seeds yet")
        if "lead_pct" in row:
            p = f"p {row['p']:.3f}" if row.get("p") is not None else "no test"
            lead = f"{row['lead_pct']:+.1f}% against {NAMES[row['best_baseline']]} ({p}): {claim(row)}"
        else:
            lead = claim(row)
        lines.append(f"| {dataset} | {best} | {lead} | {chosen[dataset]} |")
    return "\n".join(lines) + "\n"


def generated_parts(summary: list[dict], tables: str, metric: str) -> list[tuple[Path, str, str]]:
    """(document, marker, text) of every part of docs/results.md and the README made from the results
    (`tables`: paper_tables_body)."""
    results, readme = ROOT / "docs" / "results.md", ROOT / "README.md"
    return [
        (results, "summary_datasets", "\n".join(markdown(summary, metric)) + "\n"),
        (results, "paper_tables", tables),
        (readme, "summary_datasets", readme_table(summary, metric)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="NDCG@10")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = read_rows(args.results)
    summary = summarize(rows, args.metric)
    where = provenance()
    lines = [
        "# The paper's table across datasets: the best model and BSARec's lead",
        "",
        f"`{where['command']}` — {where['date']} — {where['machine']}",
        "",
        *markdown(summary, args.metric),
    ]
    atomic_write_text(args.results / "summary_datasets.md", "\n".join(lines) + "\n")
    tables = paper_tables_body(rows)
    atomic_write_text(args.results / "paper_tables.md", paper_tables(tables, where))
    if args.results == RESULTS:  # the committed results: the documents that quote them follow
        for document, marker, text in generated_parts(summary, tables, args.metric):
            replace_marked(document, marker, text)
    atomic_write_json(
        args.results / "summary_datasets.json", {"meta": where, "metric": args.metric, "rows": summary}
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
