"""The grid's Python entry point: a cell cut off midway (its run directory holds checkpoints but no metrics)
continues from its newest checkpoint and ends exactly like the uninterrupted run; a finished grid trains
nothing again."""

import json
import shutil

import pytest

from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError
from bsarec.experiments import BenchmarkGrid, run_benchmark
from bsarec.experiments.tables import model_order


def tiny_grid(tmp_path, epochs: int = 3) -> dict:
    generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=9).save(
        tmp_path / "prepared"
    )
    return {
        "models": ["sasrec"],
        "datasets": [str(tmp_path / "prepared")],
        "seeds": [1],
        "runs": tmp_path / "runs",
        "preset": None,
        "epochs": epochs,
        "overrides": {"hidden_size": 16, "max_len": 10},
    }


def test_a_cell_cut_off_midway_continues_and_ends_like_the_uninterrupted_run(tmp_path):
    settings = tiny_grid(tmp_path)
    grid = run_benchmark(**settings)
    assert grid.plan_line() == "1 cells, 0 finished, 1 to run"
    assert (grid.output / "table.md").is_file() and len(grid.results["per_seed"]) == 1
    run = next((tmp_path / "runs").rglob("metrics.json")).parent
    finished = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()  # cut off after epoch 2, before the grid recorded the cell
    (grid.output / "results.json").unlink()
    for path in (run / "checkpoints").glob("epoch0003*"):
        path.unlink()
    again = BenchmarkGrid(**settings)
    assert again.plan_line() == "1 cells, 0 finished, 1 to run"
    assert again.run().failures == []
    assert "resuming at epoch 2, batch 0" in (run / "train.log").read_text()  # continued, not restarted
    assert json.loads((run / "metrics.json").read_text())["test"] == finished["test"]
    assert BenchmarkGrid(**settings).plan_line() == "1 cells, 1 finished, 0 to run"


def test_cells_of_different_presets_get_different_run_directories():
    from bsarec.experiments.cells import protocol_tag

    assert protocol_tag({}) == "paper" and protocol_tag({"threads": 1}) == "paper"
    assert protocol_tag({}, "best") == "best" and protocol_tag({"c": 5}, "best") == "best,c=5"
    assert protocol_tag({"c": 5}, None) == "defaults,c=5" and protocol_tag({}, "x/mine.json") == "mine"
    assert protocol_tag({"max_len": 10, "c": 5}) == "c=5,max_len=10"


def test_a_cells_precision_is_in_its_name_unless_fp32():
    """bf16 cells, asked for or the machine's default, never share a run directory with fp32 ones."""
    from bsarec.experiments.cells import protocol_tag

    assert protocol_tag({"precision": "fp32"}, precision="fp32") == "paper"
    assert protocol_tag({}, precision="bf16") == "precision=bf16"
    assert protocol_tag({"precision": "bf16", "c": 5}, precision="bf16") == "c=5,precision=bf16"


@pytest.mark.slow
def test_a_packed_grid_trains_its_seeds_together_and_writes_ordinary_cells(tmp_path):
    from bsarec.experiments.grid import pack_jobs

    settings = tiny_grid(tmp_path, epochs=2)
    settings |= {"seeds": [1, 2, 3], "pack": 2, "models": ["sasrec", "gru4rec"]}
    grid = BenchmarkGrid(**settings)
    packs = pack_jobs(grid.pending, 2)
    assert sorted(len(p) for p in packs) == [1, 1, 1, 1, 2]  # sasrec: 2 + 1; gru4rec cannot be packed
    assert {j["cell"]["model"] for p in packs if len(p) == 2 for j in p} == {"sasrec"}
    grid.run()
    assert len(grid.results["per_seed"]) == 6
    again = BenchmarkGrid(**settings)
    assert again.plan_line() == "6 cells, 6 finished, 0 to run"


def test_a_packed_grid_cut_off_midway_continues_its_pack(tmp_path, caplog):
    settings = tiny_grid(tmp_path, epochs=3) | {"seeds": [1, 2], "pack": 2}
    grid = run_benchmark(**settings)
    runs = sorted(p.parent for p in (tmp_path / "runs").rglob("metrics.json"))
    finished = [json.loads((run / "metrics.json").read_text())["test"] for run in runs]
    for run in runs:  # cut off after epoch 1, before the grid recorded the cells
        (run / "metrics.json").unlink()
        for path in (run / "checkpoints").glob("epoch0003*"):
            path.unlink()
    (grid.output / "results.json").unlink()
    with caplog.at_level("INFO", logger="bsarec"):
        assert BenchmarkGrid(**settings).run().failures == []
    assert "resuming the pack at epoch 2" in caplog.text  # continued, not restarted
    assert [json.loads((run / "metrics.json").read_text())["test"] for run in runs] == finished


def test_a_grid_of_some_seeds_keeps_the_other_seeds_results(tmp_path):
    settings = tiny_grid(tmp_path, epochs=1) | {"seeds": [1, 2]}
    run_benchmark(**settings)
    for run in (tmp_path / "runs").rglob("seed1"):
        shutil.rmtree(run)  # seed 1 survives in results.json only
    grid = run_benchmark(**settings | {"seeds": [2]})
    assert [r["seed"] for r in grid.results["per_seed"]] == [1, 2]
    assert "over seeds 1, 2" in (grid.output / "table.md").read_text()


@pytest.mark.slow
def test_a_table_lists_its_models_in_one_order_whichever_grid_filled_it(tmp_path):
    settings = tiny_grid(tmp_path, epochs=1) | {"models": ["sasrec"]}
    run_benchmark(**settings)
    grid = run_benchmark(**settings | {"models": ["gru4rec"], "seeds": [1, 2]})  # later, and listed first
    assert [(r["model"], r["seed"]) for r in grid.results["per_seed"]] == [
        ("gru4rec", 1),
        ("gru4rec", 2),
        ("sasrec", 1),
    ]
    header = next(
        line for line in (grid.output / "table.md").read_text().splitlines() if line.startswith("| metric")
    )
    assert header.index("GRU4Rec") < header.index("SASRec")  # the registry's order, as in the paper's table


def test_model_order_puts_bsarec_first_and_unknown_names_last_in_their_order():
    assert model_order(["wearec", "tvrec", "custom_b", "bsarec", "custom_a", "tvrec"]) == [
        "bsarec",
        "tvrec",
        "wearec",
        "custom_b",
        "custom_a",
    ]


def test_two_grids_writing_into_one_output_side_by_side_keep_each_others_cells(tmp_path):
    settings = tiny_grid(tmp_path, epochs=1)
    first = BenchmarkGrid(**settings | {"seeds": [1]}, output=tmp_path / "results")
    # planned before the first one ran: it has not seen seed 1 in results.json
    second = BenchmarkGrid(**settings | {"seeds": [2]}, output=tmp_path / "results")
    first.run()
    second.run()
    assert [r["seed"] for r in second.results["per_seed"]] == [1, 2]
    recorded = json.loads((tmp_path / "results" / "results.json").read_text())
    assert [r["seed"] for r in recorded["per_seed"]] == [1, 2]


def test_rebuilding_the_tables_keeps_the_command_that_trained_the_cells(tmp_path):
    settings = tiny_grid(tmp_path, epochs=1)
    trained = run_benchmark(**settings, command="bsarec benchmark --train").results["meta"]
    for run in (tmp_path / "runs").rglob("seed1"):
        shutil.rmtree(run)  # the cell survives in results.json only
    grid = run_benchmark(**settings, command="bsarec benchmark --summary-only", summary_only=True)
    assert {k: grid.results["meta"][k] for k in trained} == trained
    header = (grid.output / "table.md").read_text().splitlines()[0]
    assert header.startswith("`bsarec benchmark --train`")
    assert "tables rebuilt from the recorded results by `bsarec benchmark --summary-only`" in header
    assert [r["seed"] for r in grid.results["per_seed"]] == [1]


def test_the_published_numbers_stand_only_beside_grids_of_the_papers_task(tmp_path):
    settings = {"models": ["bsarec"], "datasets": ["LastFM"], "seeds": [1], "runs": tmp_path / "runs"}
    assert "bsarec" in BenchmarkGrid(**settings).published["full"]
    for overrides, reason in [
        ({"cold_items": 0.1}, "cold_items=0.1"),
        ({"candidates": "sampled-popularity"}, "sampled"),
    ]:
        grid = BenchmarkGrid(**settings, overrides=overrides)
        assert grid.published == {}
        assert "Published numbers left out: " in grid.caption([1]) and reason in grid.caption([1])
    # beside a changed setting they stay, and the caption says they are the papers' own settings
    assert "not these overrides" not in BenchmarkGrid(**settings).caption([1])
    runtime = {"checkpoint_steps": 100, "threads": 1, "precision": "fp32"}  # the paper's runs, however run
    assert "not these overrides" not in BenchmarkGrid(**settings, overrides=runtime).caption([1])
    grid = BenchmarkGrid(**settings, overrides={"max_len": 200})
    assert "bsarec" in grid.published["full"]
    assert "each paper's run at its own settings, not these overrides" in grid.caption([1])


def test_the_pending_cells_train_longest_shortest_or_given_first(tmp_path):
    settings = tiny_grid(tmp_path) | {"models": ["sasrec", "fearec", "caser"], "seeds": [1, 2]}

    def order(how):
        return [(j["cell"]["model"], j["cell"]["seed"]) for j in BenchmarkGrid(**settings, order=how).pending]

    given = [(m, s) for m in ("sasrec", "fearec", "caser") for s in (1, 2)]
    assert order("given") == given
    assert order("longest") == [("fearec", 1), ("fearec", 2), ("caser", 1), ("caser", 2), *given[:2]]
    assert order("shortest") == [*given[:2], ("caser", 1), ("caser", 2), ("fearec", 1), ("fearec", 2)]
    with pytest.raises(ConfigError, match="--order: expected one of longest, shortest, given"):
        BenchmarkGrid(**settings, order="random")
