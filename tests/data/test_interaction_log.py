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


def test_dates_that_read_either_way_are_refused_until_a_format_is_given(write):
    path = write("dates.csv", "user,item,date\nu,a,01/02/2024\nu,b,02/01/2024\n")  # every field <= 12
    with pytest.raises(DataError, match="can be read day-first or month-first; say which with --time-format"):
        read_interaction_log(path, kcore=1)
    month_first = read_interaction_log(path, kcore=1, time_format="%m/%d/%Y")  # Jan 2, then Feb 1
    assert [month_first.item_ids[i] for i in month_first.sequences[0]] == ["a", "b"]
    day_first = read_interaction_log(path, kcore=1, time_format="%d/%m/%Y")  # Feb 1, then Jan 2
    assert [day_first.item_ids[i] for i in day_first.sequences[0]] == ["b", "a"]
    with pytest.raises(DataError, match="not a date-time in the form '%Y-%m-%d'"):
        read_interaction_log(path, kcore=1, time_format="%Y-%m-%d")


def test_a_file_that_settles_the_order_is_read_that_way(write):
    # one user, so the sequence order shows how the dates were read
    rows = "user,item,date\n" + "u,a,13/01/2024\nu,b,02/01/2024\nu,c,01/02/2024\n"
    data = read_interaction_log(write("eu.csv", rows), kcore=1)  # 13 can only be a day
    assert [data.item_ids[i] for i in data.sequences[0]] == ["b", "a", "c"]  # Jan 2, Jan 13, Feb 1
    us = "user,item,date\n" + "u,a,01/13/2024\nu,b,01/02/2024\nu,c,02/01/2024\n"
    data = read_interaction_log(write("us.csv", us), kcore=1)
    assert [data.item_ids[i] for i in data.sequences[0]] == ["b", "a", "c"]  # Jan 2, Jan 13, Feb 1
    both = "user,item,date\n" + "u,a,13/01/2024\nu,b,01/13/2024\n"
    with pytest.raises(DataError, match="and the file has both"):
        read_interaction_log(write("both.csv", both), kcore=1)


def test_ids_mean_what_their_writer_meant(write):
    text = "user,item,ts\n 1.0 , x ,1\n1,y,2\n2.0,x ,3\n"  # spaces, and integers written as floats
    data = read_interaction_log(write("ids.csv", text), kcore=1)
    assert data.user_ids == ["1", "2"] and data.item_ids == [None, "x", "y"]
    assert data.report["user_ids_with_spaces"] == 1 and data.report["user_ids_written_as_floats"] == 2
    assert data.report["item_ids_with_spaces"] == 2
    for missing in ("NaN", "null", "None"):
        with pytest.raises(DataError, match=f":line 3: 'user' value '{missing}' stands for a missing id"):
            read_interaction_log(write("nan.csv", f"user,item,ts\na,x,1\n{missing},y,2\n"), kcore=1)


def test_parquet_ids_must_be_scalar_and_float_ids_integral(tmp_path):
    pl.DataFrame({"user": [[1], [2]], "item": ["a", "b"], "ts": [1, 2]}).write_parquet(tmp_path / "l.parquet")
    with pytest.raises(DataError, match="'user' holds List"):
        read_interaction_log(tmp_path / "l.parquet", kcore=1)
    pl.DataFrame({"user": [1.0, 2.0], "item": ["a", "b"], "ts": [1, 2]}).write_parquet(tmp_path / "f.parquet")
    assert read_interaction_log(tmp_path / "f.parquet", kcore=1).user_ids == [1, 2]
    pl.DataFrame({"user": [1.5, 2.0], "item": ["a", "b"], "ts": [1, 2]}).write_parquet(tmp_path / "g.parquet")
    with pytest.raises(DataError, match="row 0: 'user' value 1.5 is not an integer id"):
        read_interaction_log(tmp_path / "g.parquet", kcore=1)


def test_infinite_times_a_bom_and_late_changes_of_form(write, tmp_path):
    with pytest.raises(DataError, match=":line 3: 'ts' is infinite"):
        read_interaction_log(write("inf.csv", "user,item,ts\na,x,1\nb,y,inf\n"), kcore=1)
    bom = read_interaction_log(write("bom.csv", "\ufeffuser_id,item_id,timestamp\na,x,1\n"), kcore=1)
    assert bom.user_ids == ["a"]
    rows = [f"u{n % 500},i{n % 900},{n}" for n in range(100_050)] + [
        "u1,i1,100050.5"
    ]  # float after 100k ints
    (tmp_path / "late.csv").write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    assert read_interaction_log(tmp_path / "late.csv", kcore=1).report["rows_read"] == 100_051


def test_messages_name_the_real_flag_and_the_ragged_line(write):
    with pytest.raises(DataError, match="name it with --time-col"):
        read_interaction_log(write("nots.csv", "user,item,when_it_was\na,x,1\n"), kcore=1)
    with pytest.raises(DataError, match=r"ragged.csv:line 3: 4 fields, but the header has 3$"):
        read_interaction_log(write("ragged.csv", "user,item,ts\na,x,1\nb,y,2,extra\n"), kcore=1)


def test_a_mix_of_numbers_dates_and_inf_names_a_bad_line(write):
    text = "user,item,ts\na,x,0\na,y,01/13/2024 10:00\na,z,inf\n"
    with pytest.raises(
        DataError, match=":line 3: 'ts' value '01/13/2024 10:00' is not a number or a date-time"
    ):
        read_interaction_log(write("mixed.csv", text), kcore=1)


def test_the_advice_for_ambiguous_dates_works_as_given(write):
    path = write("dots.csv", "user,item,date\nu,a,01.02.2024\nu,b,02.01.2024\n")
    with pytest.raises(DataError, match=r"--time-format '%d\.%m\.%Y' or '%m\.%d\.%Y'") as error:
        read_interaction_log(path, kcore=1)
    advised = str(error.value).split("--time-format '")[1].split("'")[0]
    day_first = read_interaction_log(path, kcore=1, time_format=advised)  # the advice, taken as given
    assert [day_first.item_ids[i] for i in day_first.sequences[0]] == ["b", "a"]
