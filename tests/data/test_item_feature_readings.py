"""Item features read with one stated meaning or refused with the file, row and field named: field names as
identities, values the model's arithmetic cannot carry, files that describe nothing, columns with no reading,
and the report of how every column was read."""

import json

import numpy as np
import polars as pl
import pytest

from bsarec.data.dataset import SequenceDataset
from bsarec.data.item_features import (
    VALUE_LIMIT,
    check_matched,
    read_item_features,
    reading_table,
    resolve_item_features,
)
from bsarec.errors import DataError


def vectors(tmp_path, name, ids, array):
    np.save(tmp_path / f"{name}.npy", np.asarray(array))
    (tmp_path / f"{name}.ids.txt").write_text("\n".join(ids) + "\n")
    return tmp_path / f"{name}.npy"


def test_field_names_are_stated_not_taken_from_file_names(tmp_path, catalogue):
    (tmp_path / "tags.json").write_text(json.dumps({"a": [1, 2], "b": [3]}))
    assert read_item_features(tmp_path / "tags.json", catalogue).names == ["attributes"]  # as documented
    assert read_item_features(f"genre={tmp_path / 'tags.json'}", catalogue).names == ["genre"]
    path = vectors(tmp_path, "emb", ["a", "b"], np.ones((2, 3)))
    assert read_item_features(path, catalogue).names == ["emb"]
    assert read_item_features(f"text={path}", catalogue).names == ["text"]
    (tmp_path / "items.csv").write_text("item,colour\na,red\n")
    with pytest.raises(DataError, match="a table's fields are named after its columns"):
        read_item_features(f"x={tmp_path / 'items.csv'}", catalogue)
    odd = tmp_path / "a=b.json"  # an existing path is never split at its '='
    odd.write_text(json.dumps({"a": [1]}))
    assert read_item_features(odd, catalogue).names == ["attributes"]


def test_new_item_files_must_give_the_trained_fields(tmp_path, catalogue):
    trained = read_item_features(vectors(tmp_path, "text", ["a", "b", "c"], np.ones((3, 16))), catalogue)
    arrivals = SequenceDataset([], [], [None, "n1"])
    other_name = vectors(tmp_path, "arrivals", ["n1"], np.ones((1, 16)))
    with pytest.raises(
        DataError, match=r"field 'arrivals' is not one the model was trained with .*text=arrivals"
    ):
        read_item_features(other_name, arrivals, layout=trained)
    assert read_item_features(f"text={other_name}", arrivals, layout=trained).names == ["text"]
    narrow = vectors(tmp_path, "narrow", ["n1"], np.ones((1, 8)))
    with pytest.raises(DataError, match="dimension 8; the model was trained on 'text' of dimension 16"):
        read_item_features(f"text={narrow}", arrivals, layout=trained)
    (tmp_path / "new.json").write_text(json.dumps({"n1": [1]}))
    with pytest.raises(DataError, match="'attributes' is not one the model was trained with"):
        read_item_features(tmp_path / "new.json", arrivals, layout=trained)
    with pytest.raises(
        DataError, match="holds categorical values here; the model was trained on it as vectors"
    ):
        read_item_features(f"text={tmp_path / 'new.json'}", arrivals, layout=trained)


def test_new_items_are_read_as_the_model_read_its_items(tmp_path, catalogue):
    (tmp_path / "items.csv").write_text("item,category,price\na,x,1\nb,y,3\nc,x,2\n")
    trained = read_item_features(tmp_path / "items.csv", catalogue)
    arrivals = SequenceDataset([], [], [None, "n1", "n2"])
    (tmp_path / "cheap.csv").write_text("item,category,price\nn1,x,4\nn2,y,cheap\n")
    with pytest.raises(
        DataError, match=r"cheap.csv:line 3: 'price' value 'cheap' is not a number; the model"
    ):
        read_item_features(tmp_path / "cheap.csv", arrivals, layout=trained)
    (tmp_path / "codes.csv").write_text(
        "item,category,price\nn1,7,4\nn2,8,5\n"
    )  # numbers, read as categories
    new = read_item_features(tmp_path / "codes.csv", arrivals, layout=trained)
    assert new.categorical[0].values_of(1) == ["7"] and new.dense[0].vectors[1, 0] == pytest.approx(
        (4 - trained.dense[0].shift) / trained.dense[0].scale
    )
    (tmp_path / "far.csv").write_text("item,category,price\nn1,x,1e300\n")
    with pytest.raises(DataError, match=r"far.csv:line 2: 'price' value 1e\+300 lies .* standard deviations"):
        read_item_features(tmp_path / "far.csv", arrivals, layout=trained)


def test_values_the_arithmetic_cannot_carry_are_refused_with_the_row(tmp_path, catalogue):
    (tmp_path / "huge.csv").write_text("item,price\na,1e308\nb,-1e308\nc,3\n")
    with pytest.raises(
        DataError, match=r"huge.csv:line 2: 'price' value 1e\+308 is too large to standardise"
    ):
        read_item_features(tmp_path / "huge.csv", catalogue)
    (tmp_path / "fine.csv").write_text("item,price\na,1e12\nb,-1e12\nc,3\n")  # large but standardisable
    price = read_item_features(tmp_path / "fine.csv", catalogue).dense[0]
    assert np.isfinite(price.vectors).all() and abs(price.vectors[1:4, 0]).max() < 2
    path = vectors(tmp_path, "big", ["a", "b"], [[1.0, 1e38], [0.0, 0.0]])
    with pytest.raises(DataError, match=r"big.npy:row 0 \(item 'a'\): 'big' holds 1e\+38"):
        read_item_features(path, catalogue)
    table = tmp_path / "vec.parquet"
    pl.DataFrame({"item": ["a", "b"], "v": [[0.5, 2 * VALUE_LIMIT], [0.1, 0.2]]}).write_parquet(table)
    with pytest.raises(DataError, match="vec.parquet:row 0: 'v' holds 2e"):
        read_item_features(table, catalogue)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("empty.json", lambda p: p.write_text("{}")),
        ("unknown.json", lambda p: p.write_text(json.dumps({"zz": [1], "yy": [2]}))),
        ("padded.json", lambda p: p.write_text(json.dumps({"0a": [1]}))),
        ("header.csv", lambda p: p.write_text("item,colour\n")),
        (
            "rows0.parquet",
            lambda p: pl.DataFrame(
                {"item": [], "colour": []}, schema={"item": pl.String, "colour": pl.String}
            ).write_parquet(p),
        ),
        ("lists.json", lambda p: p.write_text(json.dumps({"a": [], "b": []}))),
        ("nulls.csv", lambda p: p.write_text("item,colour\na,\nb,\n")),
        (
            "nulls.parquet",
            lambda p: pl.DataFrame({"item": ["a", "b"], "colour": [None, None]}).write_parquet(p),
        ),
    ],
)
def test_files_that_describe_no_item_are_refused_by_the_one_rule(tmp_path, catalogue, name, write):
    write(tmp_path / name)
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        check_matched(read_item_features(tmp_path / name, catalogue), "shop")
    with pytest.raises(DataError, match="no row names an item|has no value for any item"):
        resolve_item_features(str(tmp_path / name), catalogue)  # what training and data prepare call


@pytest.mark.parametrize(
    ("column", "detail"),
    [
        (pl.Series("v", [{"a": 1}, {"a": 2}]), "Struct"),
        (pl.Series("v", [b"x", b"y"]), "Binary"),
        (pl.Series("v", [[[1, 2]], [[3]]]), "a list of lists"),
        (pl.Series("v", [[{"a": 1}], [{"a": 2}]]), "a list of Struct"),
        (pl.Series("v", ["2024-01-01", "2024-02-01"]).str.to_date(), "Date"),
    ],
)
def test_columns_without_a_reading_are_refused_with_their_name(tmp_path, catalogue, column, detail):
    path = tmp_path / "odd.parquet"
    pl.DataFrame({"item": ["a", "b"]}).with_columns(column).write_parquet(path)
    with pytest.raises(DataError, match=rf"column 'v' holds {detail}"):
        read_item_features(path, catalogue)


def test_how_each_column_was_read_is_reported_with_doubts(tmp_path):
    ids = [f"i{n}" for n in range(40)]
    data = SequenceDataset([np.arange(1, 41)], ["u"], [None, *ids])
    path = tmp_path / "amazon.csv"
    rows = [f'{item},{n % 4},"[{6000 + n}, {n % 3}]",{n * 1.5},title {n}' for n, item in enumerate(ids)]
    path.write_text("item_id,category,also_bought,price,title\n" + "\n".join(rows) + "\n")
    features = read_item_features(path, data)
    report = features.report["files"][0]
    fields = report["fields"]
    assert fields["category"]["read_as"] == "number"  # read as documented, but doubted:
    assert any(
        "'category' holds only 4 distinct integers" in w and "--categorical category" in w
        for w in report["warnings"]
    )
    also = next(f for f in features.categorical if f.name == "also_bought")  # a list written as text
    assert also.values_of(2) == ["6001", "1"] and fields["also_bought"]["from"] == "text written as lists"
    assert fields["price"] == {"read_as": "number", "min": 0.0, "max": 58.5}
    assert fields["title"]["values"] == 40 and any(
        "'title': 40 distinct values" in w for w in report["warnings"]
    )
    table = reading_table(features.report)
    assert (
        "category" in table and "categorical" in table and "range 0 .. 58.5" in table and "warning:" in table
    )
    forced = read_item_features(path, data, categorical=("category",)).report["files"][0]
    assert (
        forced["fields"]["category"]["read_as"] == "categorical"
        and forced["fields"]["category"]["values"] == 4
    )
    float_lists = tmp_path / "floats.csv"
    float_lists.write_text("item,emb\n" + "\n".join(f'{i},"[0.5, {n}.25]"' for n, i in enumerate(ids)) + "\n")
    emb = read_item_features(float_lists, data)
    assert (
        emb.dense[0].vectors.shape == (41, 2)
        and emb.report["files"][0]["fields"]["emb"]["read_as"] == "dense"
    )
    broken = tmp_path / "broken.csv"
    broken.write_text('item,tags\na,"[1, [2]]"\n')
    with pytest.raises(DataError, match=r"broken.csv:line 2: 'tags' value .* is not a flat list"):
        read_item_features(broken, data)


def test_saved_features_must_belong_to_the_catalogue_not_only_match_its_size(tmp_path, catalogue):
    (tmp_path / "items.csv").write_text("item,colour\na,red\nb,blue\n")
    read_item_features(tmp_path / "items.csv", catalogue).save(tmp_path / "saved")
    same_size = SequenceDataset([np.array([1, 2])], ["u"], [None, "w", "x", "y", "z"])
    with pytest.raises(DataError, match="features of another catalogue .* other item ids"):
        read_item_features(tmp_path / "saved", same_size)
    assert read_item_features(tmp_path / "saved", catalogue).names == ["colour"]


def test_a_byte_order_mark_is_accepted_in_json_as_in_tables(tmp_path, catalogue):
    (tmp_path / "bom.json").write_bytes("\ufeff".encode() + json.dumps({"a": [1]}).encode())
    assert read_item_features(tmp_path / "bom.json", catalogue).report["files"][0]["matched_items"] == 1
