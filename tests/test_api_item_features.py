"""Item side information through the API, the CLI, the service and export: runs that train with features,
the cold-start evaluation, items added after training, and selection by attribute."""

import json

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from bsarec import SequentialRecommender
from bsarec.cli import app
from bsarec.data.item_features import read_item_features
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError, DataError
from bsarec.runs import read_run_item_features
from bsarec.serving.export import ScoringGraph, export_run

SMALL = {"epochs": 2, "hidden_size": 16, "max_len": 8, "batch_size": 64}


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=60, n_clusters=3, items_per_cluster=8, max_length=14, seed=1)


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    """An item table of the catalogue (cluster as category, a price), and one of three new items."""
    root = tmp_path_factory.mktemp("features")
    ids = data.item_ids[1:]
    pl.DataFrame(
        {"item_id": ids, "cluster": [i[:3] for i in ids], "price": [float(n % 5) for n in range(len(ids))]}
    ).write_csv(root / "items.csv")
    pl.DataFrame(
        {"item_id": ["new-1", "new-2", ids[0]], "cluster": ["c01", "c02", "c00"], "price": [1.0, 2.0, 0.0]}
    ).write_csv(root / "new.csv")
    return root


@pytest.fixture(scope="module")
def run(data, files, tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run"
    features = read_item_features(files / "items.csv", data)
    SequentialRecommender("sasrec", loss="ce", **SMALL).fit(
        data, run_dir=path, progress=False, item_features=features
    )
    return path


def test_a_run_with_features_works_from_its_directory_alone(run, files, data, tmp_path):
    config = json.loads((run / "config.json").read_text())
    assert config["item_features"].endswith("items.csv") and (run / "item_features").is_dir()
    moved = tmp_path / "items.csv"
    (files / "items.csv").rename(moved)  # the source file is gone: the run keeps what it needs
    try:
        rec = SequentialRecommender.load(run)
        assert rec.item_features.names == ["cluster", "price"]
        assert len(rec.recommend(user=data.user_ids[0], k=5).items) == 5
        assert rec.metrics["item_features"]["files"][0]["matched_items"] == data.n_items - 1
    finally:
        moved.rename(files / "items.csv")


def test_items_added_after_training_are_recommended_from_their_features(run, files):
    rec = SequentialRecommender.load(run)
    report = rec.add_items(files / "new.csv")
    assert report["added"] == 2 and report["already_known"] == 1
    everything = rec.recommend(items=["c00-i00"], k=rec.dataset.n_items)
    assert {"new-1", "new-2"} <= set(everything.items)
    # a new item's score is the user vector times its features-only representation
    table = rec.model.item_embeddings.detach()
    h = rec.model.encode(torch.tensor([[0] * 7 + [1]]))[0].detach()
    new_index = rec.dataset.item_index("new-1")
    assert np.isclose(
        everything.scores[everything.items.index("new-1")], float(h @ table[new_index]), atol=1e-5
    )
    only_c01 = rec.recommend(items=["c00-i00"], k=50, where={"cluster": ["c01"]})
    assert "new-1" in only_c01.items and all(i.startswith("c01") or i == "new-1" for i in only_c01.items)
    in_history = rec.recommend(items=["new-2"], k=3)  # a new item may be read in a history too
    assert in_history.unknown == [] and "new-2" not in in_history.items
    with pytest.raises(ConfigError, match="items were added after training"):
        rec.evaluate("test")
    with pytest.raises(ConfigError, match="save the run before adding them"):
        rec.save(run.parent / "elsewhere")
    with pytest.raises(ConfigError, match="where: no item holds"):
        rec.recommend(items=["c00-i00"], where={"cluster": ["nothing"]})


def test_a_new_item_of_a_category_the_model_never_saw_can_be_selected_by_it(run, files, tmp_path):
    rec = SequentialRecommender.load(run)
    before = rec.model.item_embeddings.detach().clone()
    pl.DataFrame(
        {"item_id": ["new-9", "new-8"], "cluster": ["c99", "c99|c01"], "price": [1.0, 2.0]}
    ).write_csv(tmp_path / "brand_new.csv")
    assert rec.add_items(tmp_path / "brand_new.csv")["unseen_values"] == {"cluster": 2}
    only_c99 = rec.recommend(items=["c00-i00"], k=5, where={"cluster": ["c99"]})
    assert sorted(only_c99.items) == ["new-8", "new-9"]
    # scored from what the model knows: new-9 as an item with no cluster, new-8 as one of cluster c01 only
    table = rec.model.item_embeddings.detach()
    assert torch.equal(table[: len(before)], before)
    fresh = SequentialRecommender.load(run)
    pl.DataFrame({"item_id": ["new-9", "new-8"], "cluster": [None, "c01"], "price": [1.0, 2.0]}).write_csv(
        tmp_path / "known_only.csv"
    )
    fresh.add_items(tmp_path / "known_only.csv")
    assert torch.allclose(table[len(before) :], fresh.model.item_embeddings.detach()[len(before) :])


def test_runs_without_features_or_with_a_mask_token_cannot_add_items(data, files, tmp_path):
    plain = SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=tmp_path / "plain", progress=False)
    with pytest.raises(ConfigError, match="trained without item features"):
        plain.add_items(files / "new.csv")
    with pytest.raises(ConfigError, match="where: this run has no item features"):
        plain.recommend(items=["c00-i00"], where={"cluster": ["c01"]})
    features = read_item_features(files / "items.csv", data)
    bert = SequentialRecommender("bert4rec", **SMALL).fit(data, progress=False, item_features=features)
    with pytest.raises(ConfigError, match="mask token"):
        bert.add_items(files / "new.csv")


def test_cold_items_are_withheld_from_training_and_reported_by_group(data, files):
    features = read_item_features(files / "items.csv", data)
    rec = SequentialRecommender("bsarec", cold_items=0.25, seed=3, **SMALL).fit(
        data, progress=False, item_features=features
    )
    cold = rec.cold_items()
    occurring = np.flatnonzero(data.item_counts()[1:]) + 1
    assert len(cold) == round(0.25 * len(occurring)) and set(cold) <= set(occurring)
    split = rec.split
    assert (
        not np.isin(split.train_inputs.numpy(), cold).any()
        and not np.isin(split.train_targets.numpy(), cold).any()
    )
    assert not np.isin(split.valid.targets.numpy(), cold).any()  # early stopping sees no cold interaction
    assert len(split.test) == data.num_users  # the test set is unchanged
    groups = rec.metrics["test_by_item_group"]
    assert (
        groups["warm"]["users"] + groups["cold"]["users"] == len(split.test) and groups["cold"]["users"] > 0
    )
    table = rec.model.embedding.item
    assert (
        table.ids.weight[torch.from_numpy(cold)].abs().sum() == 0
    )  # cold items' id rows: zero, after training
    # the groups' metrics are the overall metrics, split: their user-weighted mean is the overall value
    overall = rec.metrics["test"]["NDCG@10"]
    weighted = sum(g["NDCG@10"] * g["users"] for g in groups.values()) / len(split.test)
    assert np.isclose(overall, weighted)
    again = SequentialRecommender("bsarec", cold_items=0.25, seed=3, **SMALL)
    again.dataset = data
    assert np.array_equal(again.cold_items(), cold)  # chosen with the seed


def test_a_loaded_run_with_features_scores_as_the_trained_model(data, files, tmp_path):
    rec = SequentialRecommender("bsarec", cold_items=0.25, **SMALL).fit(
        data,
        run_dir=tmp_path / "run",
        item_features=read_item_features(files / "items.csv", data),
        progress=False,
    )
    loaded = SequentialRecommender.load(tmp_path / "run")
    rec.model.eval()
    assert torch.equal(loaded.model.item_embeddings, rec.model.item_embeddings)  # untrained id rows included
    user = data.user_ids[0]
    assert loaded.recommend(user=user, k=10).items == rec.recommend(user=user, k=10).items


def test_fit_takes_read_features_only(data, files):
    """fit reads no file: a path is refused, and so is a config that names files without them being read."""
    with pytest.raises(TypeError, match="item_features must be read .*read_run_item_features"):
        SequentialRecommender("sasrec", **SMALL).fit(data, str(files / "items.csv"), progress=False)
    named = SequentialRecommender("sasrec", item_features=str(files / "items.csv"), **SMALL)
    with pytest.raises(ConfigError, match="which fit\\(\\) does not read"):
        named.fit(data, progress=False)
    features = read_run_item_features(named.config, data)
    assert named.fit(data, features, progress=False).item_features.names == ["cluster", "price"]


def test_features_only_needs_features(data):
    with pytest.raises(ConfigError, match="features_only: items would have no representation"):
        SequentialRecommender("sasrec", features_only=True, **SMALL).fit(data, progress=False)


def test_id_dropout_needs_features_with_ids_and_trains_with_them(data, files, tmp_path):
    with pytest.raises(ConfigError, match="id_dropout: leaves out the id part"):
        SequentialRecommender("sasrec", id_dropout=0.5, **SMALL).fit(
            data, run_dir=tmp_path / "r", progress=False
        )
    assert not (tmp_path / "r").exists()  # refused before a run directory was made
    with pytest.raises(ConfigError, match="id_dropout: with features_only"):
        SequentialRecommender("sasrec", id_dropout=0.5, features_only=True, **SMALL)
    rec = SequentialRecommender("bsarec", id_dropout=0.5, **SMALL).fit(
        data, item_features=read_item_features(files / "items.csv", data), progress=False
    )
    assert rec.config.id_dropout == 0.5 and len(rec.recommend(user=data.user_ids[0], k=3).items) == 3


def test_cli_trains_with_features_recommends_new_items_and_prepares_them(data, files, tmp_path):
    runner = CliRunner()
    data.save(tmp_path / "prepared")
    out = tmp_path / "run"
    args = ["train", "--model", "gru4rec", "--dataset", str(tmp_path / "prepared"), "--epochs", "1"]
    args += ["--set", "hidden_size=16", "--set", "max_len=8", "--item-features", str(files / "items.csv")]
    result = runner.invoke(app, [*args, "--output", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["recommend", str(out), "--items", "c00-i00", "-k", "30", "--new-items", str(files / "new.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "new-1" in result.output and '"added": 2' in result.output
    result = runner.invoke(
        app, ["recommend", str(out), "--items", "c00-i00", "-k", "3", "--where", "cluster=c02"]
    )
    assert result.exit_code == 0 and all(" c02-" in line for line in result.output.strip().splitlines())
    prepared = tmp_path / "prepared2"
    result = runner.invoke(
        app,
        [
            "data",
            "prepare",
            str(tmp_path / "prepared"),
            "--output",
            str(prepared),
            "--item-features",
            str(files / "items.csv"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["item_features"]["files"][0]["matched_items"] == data.n_items - 1
    assert read_item_features(prepared / "item_features", data).names == ["cluster", "price"]


def test_training_reports_matched_items_and_refuses_a_file_that_matches_none(data, files, tmp_path, caplog):
    with caplog.at_level("INFO", logger="bsarec"):
        SequentialRecommender("sasrec", **{**SMALL, "epochs": 1}).fit(
            data, item_features=read_item_features(files / "items.csv", data), progress=False
        )
    n = data.n_items - 1
    assert f"items.csv: {n} of {n} items of {data.name} matched, 0 rows for unknown items" in caplog.text
    assert "describe only" not in caplog.text
    caplog.clear()
    few = tmp_path / "few.csv"  # a third of the catalogue
    pl.DataFrame({"item_id": data.item_ids[1 : 1 + n // 3], "cluster": "c"}).write_csv(few)
    with caplog.at_level("INFO", logger="bsarec"):
        SequentialRecommender("sasrec", **{**SMALL, "epochs": 1}).fit(
            data, item_features=read_item_features(few, data), progress=False
        )
    assert f"few.csv describe only {n // 3} of {n} items" in caplog.text
    strangers = tmp_path / "strangers.csv"  # ids of another catalogue, e.g. internal indices
    pl.DataFrame({"item_id": ["x1", "x2"], "cluster": ["a", "b"]}).write_csv(strangers)
    with pytest.raises(DataError, match="strangers.csv: no row names an item of .*2 rows for unknown items"):
        SequentialRecommender("sasrec", **SMALL).fit(
            data, item_features=read_item_features(strangers, data), progress=False
        )


def test_cli_names_a_bad_features_file(data, tmp_path):
    data.save(tmp_path / "prepared")
    bad = tmp_path / "bad.json"
    bad.write_text('{"c00-i00": 5}')
    result = CliRunner().invoke(
        app, ["train", "--dataset", str(tmp_path / "prepared"), "--item-features", str(bad), "--epochs", "1"]
    )
    assert result.exit_code != 0 and isinstance(result.exception, DataError)
    assert "bad.json: item 'c00-i00': expected a list of attribute ids" in str(result.exception)


@pytest.mark.extras("serve")
def test_service_selects_by_attribute_and_serves_new_items(run, files):
    from fastapi.testclient import TestClient

    from bsarec.serving.app import create_app

    app = create_app(run, new_items=files / "new.csv")
    torch.set_flush_denormal(False)  # the app sets it for its worker process; later tests need IEEE floats
    client = TestClient(app)
    assert client.get("/model").json()["items_added_after_training"] == 2
    body = {"items": ["c00-i00"], "k": 40, "where": {"cluster": ["c02"]}}
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert "new-2" in items and all(i.startswith("c02") or i == "new-2" for i in items)
    response = client.post("/recommend", json={"items": ["c00-i00"], "where": {"colour": ["red"]}})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "where"]
    response = client.post("/recommend/batch", json={"histories": [["new-1"]], "where": {"cluster": [1]}})
    assert response.status_code == 422 and "no item holds" in response.text


@pytest.mark.extras("export")
@pytest.mark.slow
def test_onnx_export_of_a_model_with_features_matches_pytorch(run):
    import onnxruntime

    rec = SequentialRecommender.load(run)
    history = torch.randint(0, rec.dataset.n_items, (5, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ScoringGraph(rec.model.eval())(history).numpy()
    meta = export_run(run, "onnx")
    got = onnxruntime.InferenceSession(meta["output"], providers=["CPUExecutionProvider"]).run(
        None, {"history": history.numpy()}
    )[0]
    finite = np.isfinite(expected)
    assert np.max(np.abs(got[finite] - expected[finite])) < 1e-5


def test_a_run_with_features_stopped_by_ctrl_c_resumes_like_an_unstopped_one(
    data, files, tmp_path, press_ctrl_c
):
    features = read_item_features(files / "items.csv", data)
    settings = {**SMALL, "epochs": 4, "patience": 100, "cold_items": 0.2, "threads": 1}
    straight = SequentialRecommender("bsarec", **settings).fit(
        data, run_dir=tmp_path / "straight", progress=False, item_features=features
    )
    press_ctrl_c(3)
    SequentialRecommender("bsarec", **settings).fit(
        data, run_dir=tmp_path / "stopped", progress=False, item_features=features
    )
    press_ctrl_c(None)
    resumed = SequentialRecommender.resume(tmp_path / "stopped", progress=False)  # reads its own features
    assert resumed.metrics["test"] == straight.metrics["test"]
    assert resumed.metrics["test_by_item_group"] == straight.metrics["test_by_item_group"]


def test_batch_scoring_with_new_items_and_a_where(run, files, tmp_path):
    import pyarrow.parquet as pq

    from bsarec.serving.batch import score_file

    rec = SequentialRecommender.load(run)
    rec.add_items(files / "new.csv")
    (tmp_path / "h.csv").write_text("user,items\na,c00-i00 new-1\nb,new-2\n")
    counts = score_file(
        rec, tmp_path / "h.csv", tmp_path / "out.parquet", k=5, progress=False, where={"cluster": ["c01"]}
    )
    assert counts["unknown_items"] == 0  # new items are known in histories
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert all(i.startswith("c01") or i == "new-1" for r in rows for i in r["items"])
    assert "new-1" in rows[1]["items"] and "new-1" not in rows[0]["items"]  # seen in a's history: excluded
