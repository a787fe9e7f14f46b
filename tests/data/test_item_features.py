"""Item side information from its three kinds of file: what each value becomes, what is reported, and a clear
error (naming the file, line or item) for each kind of bad input."""

import json

import numpy as np
import polars as pl
import pytest

from bsarec.data.dataset import SequenceDataset
from bsarec.data.item_features import (
    MISSING,
    ItemFeatures,
    appended,
    conform,
    read_all_item_features,
    read_item_features,
    resolve_item_features,
)
from bsarec.data.registry import resolve_dataset
from bsarec.errors import ConfigError, DataError
from tests.conftest import SHARED_DATA


def test_s3rec_attributes_keep_repeats_count_unknown_items_and_mark_missing(tmp_path, catalogue):
    path = tmp_path / "Shop_item2attributes.json"
    path.write_text(json.dumps({"a": [3, 1, 3], "b": [], "c": ["2"], "zz": [1]}))
    features = read_item_features(path, catalogue)
    field = features.categorical[0]
    assert field.name == "attributes" and field.vocabulary == ["1", "2", "3"]
    assert field.values_of(1) == ["3", "1", "3"]  # tag occurrences stay repeated
    assert field.values_of(2) == [] and field.values_of(4) == []  # an empty list and no entry: missing
    codes_of = [field.codes[field.offsets[i] : field.offsets[i + 1]].tolist() for i in range(5)]
    assert codes_of == [[], [3, 1, 3], [MISSING], [2], [MISSING]]  # padding has none, missing has code 0
    report = features.report["files"][0]
    assert report["matched_items"] == 3 and report["rows_for_unknown_items"] == 1
    assert report["items_without_value"] == {"attributes": 2}
    assert features.described_items().tolist() == [False, True, False, True, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": [1], "a": [2]}', "item 'a' appears twice"),
        ('{"a": 3}', "item 'a': expected a list of attribute ids"),
        ('{"a": [[1]]}', "item 'a': expected a list"),
        ('{"a": [true]}', "item 'a': expected a list"),
        ('{"a": [1, " "]}', "item 'a': expected a list of attribute ids \\(none blank\\)"),
        ("[1, 2]", "expected a JSON object"),
        ('{"a": [1]', "not a JSON file"),
    ],
)
def test_bad_attribute_files_are_named(tmp_path, catalogue, text, message):
    path = tmp_path / "attributes.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_item_features(path, catalogue)
    assert str(path) in str(info.value)


def test_item_table_columns_by_kind(tmp_path, catalogue):
    path = tmp_path / "items.csv"
    path.write_text(
        "item_id,category,tags,price,code\n"
        "a,shoes,red|blue,10,7\n"
        "b,,blue,30,8\n"
        " c ,boots,,,9\n"
        "x,hats,red,5,1\n"
    )
    features = read_item_features(path, catalogue, categorical=("code",))
    by_name = {f.name: f for f in features.categorical}
    assert list(by_name) == ["category", "tags", "code"] and [f.name for f in features.dense] == ["price"]
    assert by_name["category"].values_of(1) == ["shoes"] and by_name["category"].values_of(2) == []
    assert by_name["tags"].values_of(1) == ["red", "blue"] and by_name["tags"].values_of(3) == []
    assert by_name["code"].values_of(3) == ["9"]  # --categorical: a numeric column read as categories
    price = features.dense[0]
    assert price.present.tolist() == [False, True, True, False, False]  # c has no price, d no row
    raw = price.vectors[[1, 2], 0] * price.scale + price.shift
    assert np.allclose(raw, [10, 30]) and abs(price.vectors[[1, 2], 0].mean()) < 1e-6  # standardised
    assert features.report["files"][0]["rows_for_unknown_items"] == 1  # x
    assert features.report["files"][0]["items_without_value"] == {
        "category": 2,
        "tags": 2,
        "code": 1,
        "price": 2,
    }


def test_parquet_lists_are_multi_valued_categories_or_vectors(tmp_path, catalogue):
    path = tmp_path / "items.parquet"
    pl.DataFrame(
        {"item": ["a", "b", "c"], "genres": [["x", "y"], None, ["y"]], "text": [[0.1, 0.2], [0.3, 0.4], None]}
    ).write_parquet(path)
    features = read_item_features(path, catalogue)
    assert features.categorical[0].values_of(1) == ["x", "y"] and features.categorical[0].values_of(2) == []
    text = features.dense[0]
    assert text.vectors.shape == (5, 2) and np.allclose(text.vectors[2], [0.3, 0.4])
    assert text.present.tolist() == [False, True, True, False, False]


def test_bad_item_tables_are_named(tmp_path, catalogue):
    path = tmp_path / "dup.csv"
    path.write_text("item_id,category\na,x\nb,y\na,z\n")
    with pytest.raises(DataError, match=r"dup.csv:line 4: item 'a' appears again \(first at line 2\)"):
        read_item_features(path, catalogue)
    path = tmp_path / "noid.csv"
    path.write_text("sku,category\na,x\n")
    with pytest.raises(DataError, match="no item id column; columns: sku, category"):
        read_item_features(path, catalogue)
    assert read_item_features(path, catalogue, id_column="sku").report["files"][0]["matched_items"] == 1
    path = tmp_path / "ragged.parquet"
    pl.DataFrame({"item": ["a", "b"], "v": [[0.1, 0.2], [0.3]]}).write_parquet(path)
    with pytest.raises(DataError, match=r"ragged.parquet:row 1: 'v' must be 2 finite numbers"):
        read_item_features(path, catalogue)
    path = tmp_path / "nan.parquet"
    pl.DataFrame({"item": ["a"], "v": [[0.1, float("nan")]]}).write_parquet(path)
    with pytest.raises(DataError, match="row 0: .v. holds NaN or infinite values"):
        read_item_features(path, catalogue)
    path = tmp_path / "inf.csv"
    path.write_text("item,price\na,1\nb,inf\n")
    with pytest.raises(DataError, match=r"inf.csv:line 3: 'price' value 'inf' is not finite"):
        read_item_features(path, catalogue)
    path = tmp_path / "only_ids.csv"
    path.write_text("item\na\n")
    with pytest.raises(DataError, match="no feature columns"):
        read_item_features(path, catalogue)
    with pytest.raises(DataError, match="unsupported item table"):
        read_item_features(tmp_path / "dup.xlsx", catalogue) if (tmp_path / "dup.xlsx").write_text(
            "x"
        ) else None
    with pytest.raises(DataError, match="no such item features file"):
        read_item_features(tmp_path / "absent.csv", catalogue)
    path = tmp_path / "repeated.csv"
    path.write_text("item,category,category\na,x,y\n")
    with pytest.raises(DataError, match="repeated.csv: column 'category' appears more than once"):
        read_item_features(path, catalogue)
    path = tmp_path / "typo.csv"
    path.write_text("item,price\na,10\nb,12 EUR\nc,\n")
    with pytest.raises(
        DataError, match=r"typo.csv:line 3: 'price' value '12 EUR' is not a number, though 1 of"
    ):
        read_item_features(path, catalogue)
    assert read_item_features(path, catalogue, categorical=("price",)).categorical[0].values_of(2) == [
        "12 EUR"
    ]
    path = tmp_path / "empty_vectors.parquet"
    pl.DataFrame(
        {"item": ["a"], "v": [[]]}, schema={"item": pl.String, "v": pl.List(pl.Float64)}
    ).write_parquet(path)
    with pytest.raises(DataError, match="'v' holds empty vectors"):
        read_item_features(path, catalogue)


def test_numpy_vectors_with_their_id_file(tmp_path, catalogue):
    np.save(tmp_path / "emb.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    with pytest.raises(DataError, match=r"emb.ids.txt \(one item id per line"):
        read_item_features(tmp_path / "emb.npy", catalogue)
    (tmp_path / "emb.ids.txt").write_text("b\na\n")
    with pytest.raises(DataError, match="2 ids for the 3 rows"):
        read_item_features(tmp_path / "emb.npy", catalogue)
    (tmp_path / "flat.ids.txt").write_text("a\nb\n")
    np.save(tmp_path / "flat.npy", np.ones((2, 0)))
    with pytest.raises(DataError, match=r"flat.npy: expected a 2-d real array .* \(2, 0\)"):
        read_item_features(tmp_path / "flat.npy", catalogue)
    (tmp_path / "emb.ids.txt").write_text("b\na\nq\n")
    features = read_item_features(tmp_path / "emb.npy", catalogue)
    assert features.dense[0].name == "emb" and np.allclose(features.dense[0].vectors[2], [0, 1])
    assert features.dense[0].present.tolist() == [False, True, True, False, False]
    np.save(tmp_path / "emb.npy", np.array([[0.0, 1.0], [np.inf, 0.0], [1.0, 1.0]]))
    with pytest.raises(DataError, match=r"row 1 \(item 'a'\): 'emb' holds NaN or infinite values"):
        read_item_features(tmp_path / "emb.npy", catalogue)


def test_fields_of_several_files_and_a_saved_directory(tmp_path, catalogue):
    (tmp_path / "a.csv").write_text("item,category\na,x\n")
    (tmp_path / "b.csv").write_text("item,colour\nb,red\n")
    both = read_all_item_features([tmp_path / "a.csv", tmp_path / "b.csv"], catalogue)
    assert both.names == ["category", "colour"] and len(both.report["files"]) == 2
    with pytest.raises(DataError, match="field 'category' is given by two files"):
        read_all_item_features([tmp_path / "a.csv", tmp_path / "a.csv"], catalogue)
    both.save(tmp_path / "saved")
    again = read_item_features(tmp_path / "saved", catalogue)
    assert again.names == both.names and again.categorical[1].values_of(2) == ["red"]
    bigger = SequenceDataset([np.array([1, 2])], ["u"], [None, "a", "b", "c", "d", "e"])
    with pytest.raises(DataError, match=r"features of another catalogue \(4 items\); dataset has 5"):
        read_item_features(tmp_path / "saved", bigger)
    (tmp_path / "saved" / "item_features.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="damaged item features"):
        ItemFeatures.load(tmp_path / "saved")


def test_new_items_take_the_trained_layout(tmp_path, catalogue):
    (tmp_path / "items.csv").write_text("item,category,price\na,x,1\nb,y,3\n")
    trained = read_item_features(tmp_path / "items.csv", catalogue)
    arrivals = SequenceDataset([], [], [None, "n1", "n2"])
    (tmp_path / "extra.csv").write_text("item,category,price,extra\nn1,y,5,q\nn2,unseen,,q\n")
    with pytest.raises(DataError, match=r"extra.csv: field 'extra' is not one the model was trained with"):
        read_item_features(tmp_path / "extra.csv", arrivals, layout=trained)
    (tmp_path / "new.csv").write_text("item,category,price\nn1,y,5\nn2,unseen,\n")
    new, report = conform(
        read_item_features(tmp_path / "new.csv", arrivals, layout=trained), trained, "new.csv"
    )
    assert report == {"unseen_values": {"category": 1}, "fields_not_given": []}
    # a value the model never saw is listed after the trained ones: selection finds it, the model has no vector
    assert new.categorical[0].vocabulary == [*trained.categorical[0].vocabulary, "unseen"]
    assert new.categorical[0].values_of(1) == ["y"] and new.categorical[0].values_of(2) == ["unseen"]
    price = trained.dense[0]
    assert np.isclose(new.dense[0].vectors[1, 0], (5 - price.shift) / price.scale)  # the training scaling
    together = appended(trained, new)
    assert together.n_items == 7 and together.categorical[0].values_of(5) == ["y"]
    assert together.dense[0].present.tolist() == [False, True, True, False, False, True, False]
    assert together.matching({"category": ["y"]}).tolist() == [False, False, True, False, False, True, False]
    assert together.matching({"category": ["unseen"]}).tolist() == [False] * 6 + [True]
    again, report = conform(
        read_item_features(tmp_path / "new.csv", arrivals, layout=together), together, "new.csv", [2]
    )
    assert report["unseen_values"] == {"category": 1}  # still unseen by the model, though listed now
    assert again.categorical[0].vocabulary == together.categorical[0].vocabulary
    with pytest.raises(ConfigError, match="'colour' is not a categorical item feature"):
        together.matching({"colour": ["red"]})
    (tmp_path / "wide.parquet").write_bytes(b"")
    pl.DataFrame({"item": ["n1"], "price": [[1.0, 2.0]]}).write_parquet(tmp_path / "wide.parquet")
    with pytest.raises(
        DataError, match=r"wide.parquet:row 0: 'price' value \[1.0, 2.0\] is not a number; the model"
    ):
        read_item_features(tmp_path / "wide.parquet", arrivals, layout=trained)
    with pytest.raises(
        DataError, match="'price' holds vectors of dimension 2; the model was trained on number"
    ):
        conform(read_item_features(tmp_path / "wide.parquet", arrivals), trained, "wide.parquet")


@pytest.mark.skipif(not (SHARED_DATA / "LastFM.txt").is_file(), reason="../shared/data not present")
def test_registered_attribute_files_match_every_item(tmp_path, monkeypatch):
    monkeypatch.setenv("BSAREC_CACHE_DIR", str(tmp_path / "cache"))
    for name, vocabulary in (("LastFM", 388), ("Beauty", 637)):
        data = resolve_dataset(name, SHARED_DATA, download=False)
        features = resolve_item_features("attributes", data, SHARED_DATA)
        report = features.report["files"][0]
        assert report["matched_items"] == data.n_items - 1 and report["rows_for_unknown_items"] == 0
        assert len(features.categorical[0].vocabulary) == vocabulary  # as ../shared/data/README.md counts
