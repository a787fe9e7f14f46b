"""`--preset best` without a model: each dataset's best recommender, chosen on validation by the staged search
of benchmarks/choose_best.py, and re-derived here from the committed results it cites."""

import importlib.util
import sys
from pathlib import Path

import pytest

from bsarec import config as config_module
from bsarec.config import load_built_in_preset, preset_values, resolve_config
from bsarec.errors import ConfigError
from bsarec.experiments.tables import METRICS
from bsarec.models import MODELS

CHOOSER = Path(__file__).resolve().parents[1] / "benchmarks" / "choose_best.py"


@pytest.fixture(scope="module")
def choose():
    spec = importlib.util.spec_from_file_location("choose_best", CHOOSER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summarize(choose):
    """benchmarks/summarize_datasets.py, which imports choose_best (the fixture has put it in sys.modules)."""
    spec = importlib.util.spec_from_file_location(
        "summarize_datasets", CHOOSER.parent / "summarize_datasets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(choose, dataset, scores):
    """Recorded cells with the identities of the candidates (model, settings) -> score."""
    return [
        (
            choose.candidate_identity(dataset, choose.Candidate(model, dict(settings))),
            {choose.SCORE: score},
            f"made-up#{model}",
        )
        for (model, settings), score in scores.items()
    ]


def test_staged_search_carries_the_three_best_then_adds_attributes_to_the_leader(choose):
    at50 = {(m, (("max_len", 50),)): 0.01 * (i + 1) for i, m in enumerate(MODELS)}
    # BSARec ties with the last model's 0.10: the earlier model goes first
    at50[("bsarec", (("max_len", 50),))] = 0.10
    found = choose.search("LastFM", _cells(choose, "LastFM", at50))
    assert len(found.stages) == 2 and not found.complete and found.chosen is None
    carried = [c.model for c in found.stages[1]]
    assert carried == ["bsarec", "wearec", "tvrec"]
    assert choose.next_stage(found) == (
        "-m bsarec,wearec,tvrec --set max_len=200 --output benchmarks/results/candidates/LastFM/max_len200"
    )
    at200 = {("wearec", (("max_len", 200),)): 0.2, ("bsarec", (("max_len", 200),)): 0.05}
    at200[("tvrec", (("max_len", 200),))] = 0.15
    found = choose.search("LastFM", _cells(choose, "LastFM", at50 | at200))
    (third,) = found.stages[2]
    assert (third.model, third.settings) == ("wearec", {"max_len": 200, "item_features": "attributes"})
    assert choose.next_stage(found).endswith("candidates/LastFM/max_len200_attributes")
    attributes = {("wearec", (("max_len", 200), ("item_features", "attributes"))): 0.19}
    found = choose.search("LastFM", _cells(choose, "LastFM", at50 | at200 | attributes))
    assert found.complete and found.chosen.label == "wearec max_len=200"  # 0.2 beats the attributes' 0.19


def test_a_cell_counts_whatever_grid_and_preset_name_recorded_it(choose):
    wearec = choose.Candidate("wearec", {"max_len": 200})
    config = resolve_config("wearec", "LastFM", "LastFM", "paper", {"max_len": 200}, seed=42).to_dict()
    assert choose.identity(config | {"preset": "best", "threads": 2}) == choose.candidate_identity(
        "LastFM", wearec
    )
    other_seed = resolve_config("wearec", "LastFM", "LastFM", "paper", {"max_len": 200}, seed=43).to_dict()
    assert choose.identity(other_seed) != choose.candidate_identity("LastFM", wearec)


def test_recorded_runs_that_disagree_are_an_error(choose):
    candidate = choose.Candidate("sasrec", {"max_len": 50})
    identity = choose.candidate_identity("Beauty", candidate)
    with pytest.raises(SystemExit, match="recorded runs disagree"):
        choose.score("Beauty", candidate, [(identity, {choose.SCORE: v}, f"{v}#x") for v in (0.05, 0.06)])
    # the older studies' four-decimal score may differ from a results file's: that file's score counts
    older = (identity, {choose.SCORE: 0.0512, "older_code": True}, "studies#x")
    assert (
        choose.score("Beauty", candidate, [(identity, {choose.SCORE: 0.05123}, "grid#x"), older]).score
        == 0.05123
    )


def test_each_chosen_recommender_is_the_validation_argmax_of_its_committed_candidates(choose):
    best = load_built_in_preset("best")
    assert "LastFM" in best["recommender"]
    cells = choose.recorded_cells()
    for dataset, entry in best["recommender"].items():
        selection = best["selection"][f"recommender/{dataset}"]
        scores = selection["candidates"]
        assert selection["chosen"] == max(scores, key=scores.get)
        found = choose.search(dataset, cells)  # again, from the results files the scores came from
        assert found.complete
        assert {c.label: round(c.score, 6) for c in found.candidates} == scores
        assert found.chosen.label == selection["chosen"]
        assert entry == choose.recommender_entry(dataset, found.chosen)
        # `bsarec train --preset best --dataset D` trains exactly the chosen candidate
        trained = resolve_config(None, dataset, dataset, "best", seed=42).to_dict()
        assert choose.identity(trained) == choose.candidate_identity(dataset, found.chosen)


def test_preset_best_names_the_model_per_dataset(monkeypatch, caplog):
    built_in = {
        "recommender": {"Shop": {"model": "wearec", "max_len": 200}},
        "bsarec": {"Shop": {"c": 9}, "Other": {"c": 7}},
    }
    monkeypatch.setattr(config_module, "load_built_in_preset", lambda name="paper": built_in)
    with caplog.at_level("INFO", logger="bsarec"):
        assert resolve_config(None, "shop.csv", "Shop", "best").model == "wearec"
    assert resolve_config(None, "shop.csv", "Shop", "best").max_len == 200
    assert resolve_config("wearec", "shop.csv", "Shop", "best").max_len == 200
    assert resolve_config("bsarec", "shop.csv", "Shop", "best").c == 9  # BSARec's own best settings
    assert "no recommender" not in caplog.text
    with caplog.at_level("INFO", logger="bsarec"):
        assert resolve_config(None, "x.csv", "Other", "best").c == 7  # no recommender: BSARec's, and says so
    assert "no recommender has been chosen for Other yet" in caplog.text
    with pytest.raises(ConfigError, match="no best settings for sasrec on 'Shop'"):
        preset_values("best", "sasrec", "Shop")


def test_the_paper_tables_note_default_settings_and_cells_from_another_device(summarize):
    rows = [
        {"dataset": "Toys_and_Games", "model": m, "seed": 42, "device": "cpu"}
        for m in ("wearec", "tvrec", "sasrec")
    ]
    rows += [{"dataset": "LastFM", "model": "caser", "seed": 44, "device": "cuda"}]
    rows += [{"dataset": "Beauty", "model": "tvrec", "seed": 42, "device": "cpu"}]
    notes = summarize.dataset_notes(rows)
    assert notes["Toys_and_Games"].startswith("TV-Rec and WEARec: no published setting for Toys_and_Games")
    assert notes["LastFM"] == "Trained on a GPU, the other cells on the CPU: Caser seed 44 (cuda)."
    assert "Beauty" not in notes  # TV-Rec's own Beauty setting, every cell on the CPU


def _marked(path: Path, name: str) -> str:
    return path.read_text().split(f"<!-- {name} -->\n", 1)[1].split(f"<!-- /{name} -->", 1)[0]


def test_the_documents_quote_the_committed_results(choose, summarize):
    """docs/results.md and the README's generated parts are what the scripts make of the committed result
    files: a result committed without rerunning summarize_datasets.py and choose_best.py --write fails."""
    metric = "NDCG@10"
    rows = summarize.read_rows(summarize.RESULTS)
    summary, tables = summarize.summarize(rows, metric), summarize.paper_tables_body(rows)
    for document, marker, text in summarize.generated_parts(summary, tables, metric):
        assert _marked(document, marker) == text, f"{document.name}: {marker}"
    cells = choose.recorded_cells()
    searches = [choose.search(dataset, cells) for dataset in choose.DATASETS]
    assert _marked(CHOOSER.parents[1] / "docs" / "results.md", "best_recommender") == choose.report_body(
        searches, cells
    )


def test_a_best_model_or_a_lead_among_part_of_the_models_is_provisional(summarize):
    """BSARec ahead of the only baseline with 3 seeds has not yet beaten the seven, nor is the best of two
    models the best of the ten: the summary says so."""
    rows = [
        {"dataset": "Toys_and_Games", "model": model, "seed": seed}
        | dict.fromkeys(METRICS, value + 0.001 * (seed - 42))
        for model, value in (("bsarec", 0.06), ("fmlprec", 0.03), ("sasrec", 0.02))
        for seed in ((42, 43, 44) if model != "sasrec" else (42,))
    ]
    (row,) = [r for r in summarize.summarize(rows, "NDCG@10") if r["dataset"] == "Toys_and_Games"]
    assert row["best_baseline"] == "fmlprec" and row["lead_pct"] > 0
    assert summarize.claim(row).endswith("so far (only 1 of the seven baselines has 3 seeds)")
    complete = dict(row, missing_baselines=[])
    assert summarize.claim(complete) in ("holds", "BSARec leads, not significantly")
    assert summarize.best_model(row, "none") == "BSARec 0.0610 (so far: 2 of the ten have 3 seeds)"
    everything = dict(row, models=dict.fromkeys(summarize.NAMES, 3))
    assert summarize.best_model(everything, "none") == "BSARec 0.0610"
    one = dict(row, models={"bsarec": 3, "fmlprec": 2})
    assert summarize.best_model(one, "none") == "BSARec 0.0610 (so far: 1 of the ten has 3 seeds)"
