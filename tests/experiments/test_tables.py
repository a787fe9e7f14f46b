"""The benchmark's statistics and table on hand-made results."""

import pytest

from bsarec.experiments.tables import markdown_table, significance, summarise

METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR")


def row(model, seed, value):
    return {"dataset": "D", "model": model, "seed": seed, **dict.fromkeys(METRICS, value)}


ROWS = [
    row("bsarec", 1, 0.30),
    row("bsarec", 2, 0.32),
    row("bsarec", 3, 0.31),
    row("sasrec", 1, 0.20),
    row("sasrec", 2, 0.23),
    row("sasrec", 3, 0.20),
    row("caser", 1, 0.10),
    row("caser", 2, 0.10),
]


def test_summary_means_and_sample_std():
    s = summarise(ROWS)["D"]["sasrec"]["HR@10"]
    assert s["mean"] == pytest.approx(0.21) and s["n"] == 3
    assert s["std"] == pytest.approx(0.017320508, rel=1e-6)


def test_paired_t_test_over_shared_seeds():
    from scipy import stats

    tests = significance(ROWS)["D"]
    sasrec = tests["sasrec"]["NDCG@10"]
    expected = stats.ttest_rel([0.30, 0.32, 0.31], [0.20, 0.23, 0.20])
    assert sasrec["p"] == pytest.approx(expected.pvalue) and sasrec["wins"] == 3
    assert sasrec["improvement_pct"] == pytest.approx(100 * (0.31 - 0.21) / 0.21)
    assert tests["caser"]["seeds"] == [1, 2]  # only the seeds both finished are paired


def test_a_dataset_without_bsarec_gets_no_comparison_with_it():
    other = [{**r, "dataset": "E"} for r in ROWS if r["model"] != "bsarec"]
    tests = significance(ROWS + other)
    assert list(tests) == ["D"]
    table = markdown_table(summarise(ROWS + other), tests, {}, "caption", ["caser", "sasrec", "bsarec"])
    assert "BSARec vs each baseline on D" in table and "on E" not in table
    assert "### E" in table  # the baselines' own numbers still stand


def test_table_bolds_the_best_and_shows_published_and_improvement():
    summary = summarise(ROWS)
    published = {"full": {"bsarec": {"D": {"HR@10": 0.5}}}}
    table = markdown_table(summary, significance(ROWS), published, "caption", ["caser", "sasrec", "bsarec"])
    line = next(li for li in table.splitlines() if li.startswith("| HR@10 |"))
    assert line.split(" | ")[3].startswith("**0.3100")  # BSARec, the best, in bold
    assert "0.5000" in line and "+47.6% (vs SASRec)" in line
    assert "| metric | Caser | SASRec | BSARec | BSARec (published) | Improv. vs best baseline |" in table


def test_a_dataset_note_stands_under_its_heading_only():
    other = [{**r, "dataset": "E"} for r in ROWS]
    notes = {"E": "SASRec: its reference defaults."}
    table = markdown_table(
        summarise(ROWS + other), {}, {}, "caption", ["caser", "sasrec", "bsarec"], notes=notes
    )
    lines = table.splitlines()
    assert lines[lines.index("### E") + 2] == notes["E"] and table.count(notes["E"]) == 1
    assert lines[lines.index("### D") + 2].startswith("| metric |")


def test_table_shows_the_published_numbers_of_every_model_that_has_them():
    published = {"full": {"bsarec": {"D": {"HR@10": 0.5}}, "sasrec": {"D": {"HR@10": 0.25}}, "caser": {}}}
    table = markdown_table(summarise(ROWS), {}, published, "caption", ["caser", "sasrec", "bsarec"])
    assert "| BSARec | SASRec (published) | BSARec (published) |" in table
    line = next(li for li in table.splitlines() if li.startswith("| HR@10 |"))
    assert "| 0.2500 | 0.5000 |" in line and line.count("–") == 0
    assert next(li for li in table.splitlines() if li.startswith("| HR@5 |")).count("| – | – |") == 1


def test_read_recorded_names_the_file_of_a_bad_results_file(tmp_path):
    import json

    from bsarec.errors import DataError
    from bsarec.experiments.tables import read_recorded

    assert read_recorded(tmp_path) == {}  # no results file yet: nothing recorded
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=f"{path}: not a results file of bsarec benchmark"):
        read_recorded(tmp_path)
    path.write_text(json.dumps({"summary": {}}))
    with pytest.raises(DataError, match="per_seed"):
        read_recorded(tmp_path)
    good = {**row("sasrec", 1, 0.2), "run_dir": "somewhere/runs/D/sasrec/paper/seed1"}
    path.write_text(json.dumps({"per_seed": [good], "configs": {"D/sasrec/paper/seed1": {"lr": 0.001}}}))
    recorded = read_recorded(tmp_path)
    assert list(recorded) == ["D/sasrec/paper/seed1"]  # keyed by the cell, whatever --runs was
    assert recorded["D/sasrec/paper/seed1"]["row"] == good
    assert recorded["D/sasrec/paper/seed1"]["config"] == {"lr": 0.001}
