"""New items on the main path: added to a run with integer ids (every benchmark dataset) and scored in
batch, with stated field names, and refused with the file, row and field named when they do not fit."""

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bsarec import SequentialRecommender
from bsarec.cli import app
from bsarec.data.dataset import SequenceDataset
from bsarec.data.item_features import read_item_features
from bsarec.errors import DataError

runner = CliRunner()


@pytest.fixture(scope="module")
def int_run(tmp_path_factory):
    """A run on a catalogue of integer item ids (as benchmark files have) with a table and vectors."""
    root = tmp_path_factory.mktemp("int")
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 21, size=8) for _ in range(30)]
    data = SequenceDataset(sequences, list(range(30)), [None, *range(101, 121)], name="ints")
    pl.DataFrame({"item_id": list(range(101, 121)), "colour": [f"c{n % 3}" for n in range(20)]}).write_csv(
        root / "items.csv"
    )
    np.save(root / "text.npy", rng.normal(size=(20, 4)))
    (root / "text.ids.txt").write_text("\n".join(str(i) for i in range(101, 121)) + "\n")
    features = read_item_features(root / "items.csv", data).merged(
        read_item_features(root / "text.npy", data)
    )
    settings = {"hidden_size": 16, "max_len": 8, "epochs": 1, "threads": 1}
    SequentialRecommender("sasrec", **settings).fit(
        data, run_dir=root / "run", progress=False, item_features=features
    )
    pl.DataFrame({"item_id": [900, 901], "colour": ["c1", "c2"]}).write_csv(root / "new.csv")
    return root


def test_batch_scoring_with_new_items_on_an_integer_catalogue(int_run, tmp_path):
    pl.DataFrame({"user": ["a", "b"], "items": ["101 102", "900 103"]}).write_csv(tmp_path / "hist.csv")
    args = ["recommend", str(int_run / "run"), "--input", str(tmp_path / "hist.csv")]
    args += ["--output", str(tmp_path / "r.parquet"), "--new-items", str(int_run / "new.csv"), "-k", "25"]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.schema.field("items").type.value_type == pa.int64()  # integer ids stay integers
    rows = table.to_pylist()
    assert rows[1]["unknown"] == [] and {900, 901} & set(rows[0]["items"])  # the new ids are known
    pl.DataFrame({"item_id": ["sku-x"], "colour": ["c0"]}).write_csv(tmp_path / "text_ids.csv")
    args[args.index("--new-items") + 1] = str(tmp_path / "text_ids.csv")
    args[args.index("--output") + 1] = str(tmp_path / "s.parquet")
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "s.parquet").schema.field("items").type.value_type == pa.string()


def test_new_items_need_the_trained_field_names(int_run, tmp_path):
    rec = SequentialRecommender.load(int_run / "run")
    np.save(tmp_path / "fresh.npy", np.ones((1, 4)))
    (tmp_path / "fresh.ids.txt").write_text("950\n")
    with pytest.raises(
        DataError, match="field 'fresh' is not one the model was trained with .*text=fresh.npy"
    ):
        rec.add_items(tmp_path / "fresh.npy")
    report = rec.add_items(f"text={tmp_path / 'fresh.npy'}")
    assert report["added"] == 1 and report["fields_not_given"] == ["colour"]
    assert 950 in rec.dataset.item_ids and rec.item_features.dense[0].present[-1]


def test_empty_ids_and_text_in_numbers_are_refused_not_dropped(int_run, tmp_path):
    rec = SequentialRecommender.load(int_run / "run")
    (tmp_path / "gap.csv").write_text("item_id,colour\n900,c1\n,c2\n")
    with pytest.raises(DataError, match=r"gap.csv:line 3: empty item id"):
        rec.add_items(tmp_path / "gap.csv")
    (tmp_path / "gap.ids.txt").write_text("950\n \n")
    np.save(tmp_path / "gap.npy", np.ones((2, 4)))
    with pytest.raises(DataError, match=r"gap.ids.txt:line 2: empty item id"):
        rec.add_items(f"text={tmp_path / 'gap.npy'}")
    assert rec.added_items == 0


@pytest.mark.extras("serve")
def test_served_new_items_with_values_the_model_cannot_carry_are_refused_at_start(tmp_path):
    data = SequenceDataset(
        [np.array([1, 2, 3, 1]), np.array([2, 3, 1, 2])] * 5, list(range(10)), [None, "a", "b", "c"]
    )
    (tmp_path / "items.csv").write_text("item,price\na,1\nb,2\nc,3\n")
    features = read_item_features(tmp_path / "items.csv", data)
    settings = {"hidden_size": 8, "max_len": 4, "epochs": 1, "threads": 1}
    SequentialRecommender("sasrec", **settings).fit(
        data, run_dir=tmp_path / "run", progress=False, item_features=features
    )
    (tmp_path / "new.csv").write_text("item,price\nn1,1e300\n")
    result = runner.invoke(app, ["serve", str(tmp_path / "run"), "--new-items", str(tmp_path / "new.csv")])
    assert isinstance(result.exception, DataError) and "new.csv:line 2: 'price' value 1e+300" in str(
        result.exception
    )


def test_prepare_prints_how_each_column_was_read(tmp_path):
    rows = [f"u{u},i{(u + t) % 6},{t}" for u in range(8) for t in range(5)]
    (tmp_path / "log.csv").write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text(
        "item,category,tags\n" + "\n".join(f'i{n},{n % 2},"[{n}, 7]"' for n in range(6)) + "\n"
    )
    args = ["data", "prepare", str(tmp_path / "log.csv"), "--output", str(tmp_path / "p"), "--kcore", "1"]
    result = runner.invoke(app, [*args, "--item-features", str(tmp_path / "items.csv")])
    assert result.exit_code == 0, result.output
    assert "read as" in result.stdout and "text written as lists" in result.stdout
    assert "'category' holds only 2 distinct integers" in result.stdout
    assert json.loads((tmp_path / "p" / "item_features" / "item_features.json").read_text())["catalogue"]
