import polars as pl
import pytest

from bsarec.data.dataset import SequenceDataset
from bsarec.data.interaction_log import kcore_filter, read_interaction_log
from bsarec.errors import DataError

LOG = """user_id,item_id,timestamp
a,x,3
a,y,1
b,x,2
a,z,2
b,y,5
b,y,4
c,007,1
"""


def test_orders_by_time_remaps_and_keeps_original_ids(write):
    data = read_interaction_log(write("log.csv", LOG), kcore=1)
    assert data.user_ids == ["a", "b", "c"]
    assert data.item_ids == [None, "y", "z", "x", "007"]  # first appearance; "007" stays text
    assert [s.tolist() for s in data.sequences] == [[1, 2, 3], [3, 1, 1], [4]]
    assert data.report["rows_read"] == 7 and data.report["rows_kept"] == 7


def test_ties_keep_file_order(write):
    path = write("ties.csv", "user,item,time\nu,b,1\nu,a,1\nu,c,0\n")
    data = read_interaction_log(path, kcore=1)
    assert [data.item_ids[i] for i in data.sequences[0]] == ["c", "b", "a"]


def test_kcore_is_iterative_and_reports_drops(write):
    # item q appears twice; after dropping user w (1 event) item p falls below 2, then user v falls below 2
    text = "user,item,ts\nu,q,1\nu,q,2\nv,p,1\nv,q,3\nw,p,1\n"
    data = read_interaction_log(write("k.csv", text), kcore=2)
    assert data.user_ids == ["u"] and data.item_ids == [None, "q"]
    r = data.report
    assert r["rows_read"] == 5 and r["rows_kept"] == 2
    assert r["rows_dropped_user_below_k"] + r["rows_dropped_item_below_k"] == 3
    assert r["users_dropped"] == 2 and r["items_dropped"] == 1 and r["kcore_iterations"] >= 2


def test_kcore_on_frame_keeps_a_valid_core():
    frame = pl.DataFrame(
        {"user": list("aaabbbcccdd"), "item": list("xyzxyzxyzxw"), "time": [0.0] * 11, "line": range(11)}
    )
    kept, dropped = kcore_filter(frame, 3)
    assert kept.height == 9 and set(kept["user"]) == {"a", "b", "c"}
    assert dropped["rows_dropped_user_below_k"] == 2
    assert kept.group_by("user").len()["len"].min() >= 3
    assert kept.group_by("item").len()["len"].min() >= 3


def test_tsv_parquet_and_explicit_columns(write, tmp_path):
    tsv = write("log.tsv", "visitor\tsku\twhen\n1\t10\t2020-01-02\n1\t11\t2020-01-01\n")
    data = read_interaction_log(tsv, user_col="visitor", item_col="sku", time_col="when", kcore=1)
    assert [data.item_ids[i] for i in data.sequences[0]] == ["11", "10"]
    frame = pl.DataFrame({"userId": [5, 5, 6], "movieId": [100, 200, 100], "timestamp": [2, 1, 1]})
    frame.write_parquet(tmp_path / "log.parquet")
    data = read_interaction_log(tmp_path / "log.parquet", kcore=1)
    assert data.user_ids == [5, 6] and data.item_ids == [None, 200, 100]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user_id,item_id,timestamp\na,x,1\n,y,2\n", ":line 3: empty 'user_id'"),
        ("user_id,item_id,timestamp\na,x,1\nb,,2\n", ":line 3: empty 'item_id'"),
        ("user_id,item_id,timestamp\na,x,1\nb,y,yesterday\n", ":line 3: 'timestamp' value 'yesterday'"),
        ("user_id,item_id,timestamp\na,x,1\nb,y,NaN\n", ":line 3: 'timestamp' is NaN"),
        ("person,item_id,timestamp\na,x,1\n", "cannot find the user column"),
        ("user_id,item_id,timestamp\n", "no rows"),
    ],
)
def test_bad_logs_name_the_line_and_field(write, text, expected):
    path = write("bad.csv", text)
    with pytest.raises(DataError) as info:
        read_interaction_log(path, kcore=1)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_everything_filtered_is_an_error(write):
    with pytest.raises(DataError, match="no events left after 5-core"):
        read_interaction_log(write("small.csv", LOG), kcore=5)


def test_unsupported_suffix(write):
    with pytest.raises(DataError, match="unsupported log format"):
        read_interaction_log(write("log.json", "{}"))


def test_id_maps_round_trip_through_save_and_load(write, tmp_path):
    data = read_interaction_log(write("log.csv", LOG), kcore=1)
    data.save(tmp_path / "prepared")
    again = SequenceDataset.load(tmp_path / "prepared")
    assert again.user_ids == data.user_ids and again.item_ids == data.item_ids
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in data.sequences]
    assert again.report == data.report
    assert again.item_index("007") == 4 and again.user_row("b") == 1


def test_the_separator_is_detected_from_the_header_whatever_the_suffix(write):
    tab_separated = LOG.replace(",", "\t")  # a common export: tab-separated, named .csv
    data = read_interaction_log(write("export.csv", tab_separated), kcore=1)
    assert data.user_ids == ["a", "b", "c"] and data.report["rows_read"] == 7
    semicolons = read_interaction_log(write("semi.csv", LOG.replace(",", ";")), kcore=1)
    assert [s.tolist() for s in semicolons.sequences] == [s.tolist() for s in data.sequences]
    commas = read_interaction_log(write("commas.tsv", LOG), kcore=1)  # comma-separated, named .tsv
    assert commas.item_ids == data.item_ids


def test_an_explicit_separator_wins_and_a_bad_one_is_named(write):
    path = write("pipes.csv", LOG.replace(",", "|"))
    assert read_interaction_log(path, kcore=1, separator="pipe").user_ids == ["a", "b", "c"]
    assert read_interaction_log(path, kcore=1, separator="|").user_ids == ["a", "b", "c"]
    with pytest.raises(DataError, match="cannot find the user column"):
        read_interaction_log(
            path, kcore=1, separator=","
        )  # told commas: one column named user_id|item_id|...
    with pytest.raises(DataError, match="--separator '::': expected one character"):
        read_interaction_log(path, kcore=1, separator="::")
