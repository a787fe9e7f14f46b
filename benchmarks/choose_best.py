"""bsarec's best recommender for a dataset, chosen on validation alone (docs/results.md, "Best recommender").

The search is fixed and staged, so that its cost stays a few cells beyond the paper's table:
  stage 1: every model at its paper preset with max_len 50 and without item attributes;
  stage 2: the three best models of stage 1 at max_len 200;
  stage 3: the best candidate of stages 1-2 with the dataset's item attributes (S3-Rec's files).
Every candidate is one run at seed 42, scored by its validation NDCG@20 (the early-stopping criterion); the
test split plays no part. The chosen recommender is the argmax over all candidates; ties go to the earlier one.

A candidate's score comes from any committed grid result (benchmarks/results/**/results.json) holding a cell
with exactly the candidate's settings (runtime settings and the preset's name aside), so a run another grid
already made counts and is not trained twice; failing that, from the seed-42 studies of
benchmarks/results/studies/summary.json (trained by older code, which kept four decimals).

    python benchmarks/choose_best.py                       # each dataset's stages, scores and missing cells
    python benchmarks/choose_best.py -d LastFM --next-stage  # `bsarec benchmark` arguments of the missing cells
    python benchmarks/choose_best.py -d LastFM --winner      # benchmark arguments of its seeds still to run
    python benchmarks/choose_best.py --write   # complete searches into presets/best.json and the results page
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bsarec.config import parse_overrides, preset_values, resolve_config
from bsarec.environment import provenance
from bsarec.experiments.cells import cell_key, comparable
from bsarec.experiments.tables import METRICS
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.models import MODELS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BEST_PRESET = ROOT / "src" / "bsarec" / "presets" / "best.json"
DATASETS = ("LastFM", "Beauty", "Toys_and_Games")
SEED = 42
TEST_SEEDS = (42, 43, 44)  # the chosen recommender's test numbers
SCORE = "valid_NDCG@20"
CARRIED = 3  # models of stage 1 carried to stage 2
CRITERION = (
    "validation NDCG@20 of one seed-42 run per candidate; stage 1: every model at its paper preset, max_len 50, "
    "no item attributes; stage 2: the 3 best models of stage 1 at max_len 200; stage 3: the best candidate so "
    "far with the dataset's item attributes (benchmarks/choose_best.py)"
)
# the published single runs to beat: (metric, value, whose); none was published for Toys by TV-Rec or WEARec
PUBLISHED = {
    "LastFM": [("HR@10", 0.0899, "WEARec, max_len 50"), ("HR@10", 0.0972, "WEARec, max_len 200")],
    "Beauty": [("HR@10", 0.1041, "WEARec")],
    "Toys_and_Games": [("HR@5", 0.0805, "BSARec")],
}


@dataclass
class Candidate:
    model: str
    settings: dict[str, Any]
    score: float | None = None
    source: str | None = None  # results file and cell key that gave the score

    @property
    def label(self) -> str:
        return f"{self.model} " + ",".join(f"{k}={v}" for k, v in self.settings.items())


@dataclass
class Search:
    dataset: str
    stages: list[list[Candidate]] = field(default_factory=list)

    @property
    def candidates(self) -> list[Candidate]:
        return [c for stage in self.stages for c in stage]

    @property
    def missing(self) -> list[Candidate]:
        return [c for c in self.candidates if c.score is None]

    @property
    def complete(self) -> bool:
        return len(self.stages) == 3 and not self.missing

    @property
    def chosen(self) -> Candidate | None:
        return best_of(self.candidates) if self.complete else None


def best_of(candidates: list[Candidate]) -> Candidate:
    """The first candidate with the highest score (max keeps the first of equals)."""
    return max(candidates, key=lambda c: c.score if c.score is not None else -math.inf)


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """What makes a run what it is, whatever preset name produced its settings."""
    return {k: v for k, v in comparable(config).items() if k != "preset"}


def candidate_identity(dataset: str, candidate: Candidate, seed: int = SEED) -> dict[str, Any]:
    config = resolve_config(candidate.model, dataset, dataset, "paper", candidate.settings, seed=seed)
    return identity(config.to_dict())


def recorded_cells(results: Path = RESULTS) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(identity, row of metrics, source) of every committed cell whose results file keeps its settings, then
    the seed-42 studies summarised in studies/summary.json (their validation scores only: their run
    directories are gone, and the key's protocol tag names their overrides of the paper preset)."""
    cells = []
    for path in sorted(results.rglob("results.json")):
        recorded = json.loads(path.read_text())
        configs = recorded.get("configs", {})
        for row in recorded.get("per_seed", []):
            key = cell_key(row["run_dir"])
            if configs.get(key):  # a cell recorded before results files kept settings has none
                cells.append((identity(configs[key]), row, f"{path.relative_to(ROOT)}#{key}"))
    studies = results / "studies" / "summary.json"
    if studies.is_file():
        for key, entry in json.loads(studies.read_text()).items():
            dataset, model, tag = key.split("/")
            overrides = {} if tag == "paper" else parse_overrides(tag.split(","))
            config = resolve_config(model, dataset, dataset, "paper", overrides, seed=SEED)
            row = {SCORE: entry["valid"]["NDCG@20"], "older_code": True}  # four decimals, older trainer
            cells.append((identity(config.to_dict()), row, f"{studies.relative_to(ROOT)}#{key}"))
    return cells


def score(dataset: str, candidate: Candidate, cells: list) -> Candidate:
    """The candidate with the score of its first recorded cell (a results file's before the studies summary,
    which older code trained); two results files that disagree are an error."""
    wanted = candidate_identity(dataset, candidate)
    found = [(row, source) for config, row, source in cells if config == wanted and SCORE in row]
    if found:
        values = {round(row[SCORE], 6) for row, _ in found if not row.get("older_code")}
        if len(values) > 1:
            disagreeing = [(row[SCORE], source) for row, source in found]
            raise SystemExit(f"{candidate.label} on {dataset}: recorded runs disagree: {disagreeing}")
        first_row, first_source = found[0]
        candidate.score, candidate.source = first_row[SCORE], first_source
    return candidate


def search(dataset: str, cells: list) -> Search:
    """The stages as far as the recorded scores allow (a stage needs the previous one complete)."""
    result = Search(dataset)
    first = [score(dataset, Candidate(m, {"max_len": 50}), cells) for m in MODELS]
    result.stages.append(first)
    if any(c.score is None for c in first):
        return result
    carried = sorted(first, key=lambda c: -c.score)[:CARRIED]  # stable: ties keep the models' order
    second = [score(dataset, Candidate(c.model, {"max_len": 200}), cells) for c in carried]
    result.stages.append(second)
    if any(c.score is None for c in second):
        return result
    leader = best_of(first + second)
    third = Candidate(leader.model, {**leader.settings, "item_features": "attributes"})
    result.stages.append([score(dataset, third, cells)])
    return result


def benchmark_arguments(models: list[str], settings: dict[str, Any]) -> str:
    return f"-m {','.join(models)} " + " ".join(f"--set {k}={v}" for k, v in settings.items())


def next_stage(found: Search) -> str:
    """`bsarec benchmark` arguments of the last stage's missing cells (one group of settings at a time)."""
    missing = [c for c in found.stages[-1] if c.score is None]
    settings = missing[0].settings
    models = [c.model for c in missing if c.settings == settings]
    name = "_".join(f"{v}" if k != "max_len" else f"max_len{v}" for k, v in settings.items())
    output = f"benchmarks/results/candidates/{found.dataset}/{name}"
    return f"{benchmark_arguments(models, settings)} --output {output}"


def recommender_entry(dataset: str, chosen: Candidate) -> dict[str, Any]:
    """presets/best.json's recommender for a dataset: the model and its paper preset changed by the candidate."""
    return {"model": chosen.model, **preset_values("paper", chosen.model, dataset), **chosen.settings}


def selection_entry(found: Search) -> dict[str, Any]:
    chosen = found.chosen
    return {
        "criterion": CRITERION,
        "stages": [[c.label for c in stage] for stage in found.stages],
        "candidates": {c.label: round(c.score, 6) for c in found.candidates},
        "sources": {c.label: c.source for c in found.candidates},
        "chosen": chosen.label,
    }


def seed_rows(dataset: str, candidate: Candidate, cells: list) -> dict[int, dict[str, Any]]:
    """The recorded test metrics of a candidate's settings per seed of TEST_SEEDS, from any grid."""
    rows = {}
    for seed in TEST_SEEDS:
        wanted = candidate_identity(dataset, candidate, seed)
        found = [row for config, row, _ in cells if config == wanted and all(m in row for m in METRICS)]
        if found:
            rows[seed] = found[0]
    return rows


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def report(body: str) -> str:
    """results/best_recommender.md: the provenance header, then the report's body (report_body)."""
    where = provenance()
    header = [
        "# bsarec's best recommender per dataset",
        f"`{where['command']}` — {where['date']} — {where['machine']}",
        f"Chosen on {CRITERION}. The test numbers are the winner's, over the seeds run "
        "(`bash benchmarks/grids.sh best-recommender`, DATASET=...).",
    ]
    return "\n\n".join([*header, body])


def report_body(searches: list[Search], cells: list) -> str:
    """Every search's stages and scores, and each winner's test metrics (docs/results.md quotes this part)."""
    lines: list[str] = []
    for found in searches:
        if lines:
            lines.append("")
        lines += [f"### {found.dataset}", "", "| stage | candidate | validation NDCG@20 | recorded in |"]
        lines.append("|---|---|---|---|")
        for number, stage in enumerate(found.stages, 1):
            for c in stage:
                value = f"{c.score:.4f}" if c.score is not None else "not run yet"
                bold = "**" if c is found.chosen else ""
                where = c.source.split("#")[0] if c.source else ""
                lines.append(f"| {number} | {bold}{c.label}{bold} | {value} | {where} |")
        if not found.complete:
            lines += ["", "The search is not complete: nothing is chosen yet."]
            continue
        rows = seed_rows(found.dataset, found.chosen, cells)
        lines += ["", f"Chosen: **{found.chosen.label}**."]
        if not rows:
            continue
        seeds = ", ".join(str(seed) for seed in sorted(rows))
        still = [str(seed) for seed in TEST_SEEDS if seed not in rows]
        later = f" (seed{'s' if len(still) > 1 else ''} {', '.join(still)} still to run)" if still else ""
        lines += ["", f"Its test metrics, mean ± std over seeds {seeds}{later}:", ""]
        lines += ["| " + " | ".join(METRICS) + " |", "|" + "---|" * len(METRICS)]
        stats = {metric: mean_std([r[metric] for r in rows.values()]) for metric in METRICS}
        shown = [f"{m:.4f} ± {s:.4f}" if len(rows) > 1 else f"{m:.4f}" for m, s in stats.values()]
        lines.append("| " + " | ".join(shown) + " |")
        for metric, value, whose in PUBLISHED[found.dataset]:
            mean, spread = stats[metric]
            gap = f"{100 * (mean - value) / value:+.1f}%"
            if spread:
                gap += f", {abs(mean - value) / spread:.1f} seed deviations {'above' if mean > value else 'below'}"
            lines.append(
                f"\nAgainst the published single run of {whose}, {metric} {value:.4f}: {mean:.4f} ({gap})."
            )
    return "\n".join(lines) + "\n"


def replace_marked(path: Path, name: str, text: str) -> None:
    """Put `text` between the lines <!-- NAME --> and <!-- /NAME --> of a document."""
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
    document = path.read_text()
    if start not in document or end not in document:
        raise SystemExit(f"{path}: expected the lines {start.strip()} and {end} around the generated part")
    head, rest = document.split(start, 1)
    atomic_write_text(path, head + start + text + end + rest.split(end, 1)[1])


def write(searches: list[Search], body: str) -> None:
    best = json.loads(BEST_PRESET.read_text())
    for found in searches:
        if found.complete:
            best.setdefault("recommender", {})[found.dataset] = recommender_entry(found.dataset, found.chosen)
            best["selection"][f"recommender/{found.dataset}"] = selection_entry(found)
    atomic_write_json(BEST_PRESET, best)
    atomic_write_text(RESULTS / "best_recommender.md", report(body))
    replace_marked(ROOT / "docs" / "results.md", "best_recommender", body)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-d", "--dataset", action="append", help=f"default: {', '.join(DATASETS)}")
    parser.add_argument(
        "--next-stage", action="store_true", help="print the missing cells' benchmark arguments"
    )
    parser.add_argument(
        "--winner", action="store_true", help="print the chosen candidate's arguments for its missing seeds"
    )
    parser.add_argument("--write", action="store_true", help="record complete searches in presets/best.json")
    args = parser.parse_args()
    cells = recorded_cells()
    searches = [search(dataset, cells) for dataset in args.dataset or DATASETS]
    if args.next_stage or args.winner:
        if len(searches) != 1:
            parser.error("--next-stage and --winner take one --dataset")
        (found,) = searches
        if args.winner:
            if not found.complete:
                sys.exit(f"{found.dataset}: the search is not complete; run its missing cells first")
            missing = [
                seed for seed in TEST_SEEDS if seed not in seed_rows(found.dataset, found.chosen, cells)
            ]
            if missing:  # the seeds another grid has not already run
                seeds = ",".join(map(str, missing))
                print(f"{benchmark_arguments([found.chosen.model], found.chosen.settings)} --seeds {seeds}")
        elif not found.complete:
            print(next_stage(found))
        else:
            sys.exit(1)
        return
    body = report_body(searches, cells)
    if args.write:
        write(searches, body)
    print(report(body), end="")


if __name__ == "__main__":
    main()
