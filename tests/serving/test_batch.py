import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bsarec import SequentialRecommender
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import DataError
from bsarec.serving.batch import score_file


@pytest.fixture(scope="module")
def rec():
    data = generate_synthetic(n_users=50, n_clusters=3, items_per_cluster=8, max_length=14, seed=4)
    return SequentialRecommender("sasrec", epochs=1, hidden_size=16, max_len=10, num_heads=1).fit(
        data, progress=False
    )


def test_csv_histories_to_parquet_in_chunks(rec, tmp_path):
    items = [str(i) for i in rec.dataset.item_ids[1:6]]
    lines = ["user,items", f"a,{' '.join(items[:3])}", "b,", f"c,{items[4]} unknown-1", "d,unknown-2"]
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")
    counts = score_file(rec, tmp_path / "h.csv", tmp_path / "out.parquet", k=3, chunk_rows=2, progress=False)
    assert counts == {"histories": 4, "empty_histories": 2, "unknown_items": 2}
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["id"] for r in table] == ["a", "b", "c", "d"]
    assert all(len(r["items"]) == 3 and len(r["scores"]) == 3 for r in table)
    assert not set(table[0]["items"]) & set(items[:3])  # seen items excluded
    assert table[2]["unknown"] == ["unknown-1"] and table[3]["empty_history"] and table[1]["empty_history"]
    single = rec.recommend(items=items[:3], k=3)
    assert table[0]["items"] == single.items


def test_parquet_list_column_and_row_numbers(rec, tmp_path):
    items = rec.dataset.item_ids[1:4]
    pq.write_table(pa.table({"items": [list(items), []]}), tmp_path / "h.parquet")
    score_file(rec, tmp_path / "h.parquet", tmp_path / "out.parquet", k=2, progress=False)
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["id"] for r in rows] == ["0", "1"] and rows[1]["empty_history"]


def test_bad_input_names_the_file_and_column(rec, tmp_path):
    (tmp_path / "h.csv").write_text("user,history\na,1 2\n")
    with pytest.raises(DataError, match="h.csv.*no column 'items'"):
        score_file(rec, tmp_path / "h.csv", tmp_path / "out.parquet", progress=False)
    assert not (tmp_path / "out.parquet").exists()
    (tmp_path / "h.json").write_text("{}")
    with pytest.raises(DataError, match="expected a .csv"):
        score_file(rec, tmp_path / "h.json", tmp_path / "out.parquet", progress=False)


def test_float_lists_are_integer_ids_and_unreadable_files_are_named(tmp_path):
    from bsarec.data.benchmark_format import read_benchmark_file, write_benchmark_file

    data = generate_synthetic(n_users=50, n_clusters=3, items_per_cluster=8, max_length=14, seed=4)
    write_benchmark_file(data, tmp_path / "ints.txt")  # integer item ids, as the benchmark files have
    rec = SequentialRecommender("sasrec", epochs=1, hidden_size=16, max_len=10, num_heads=1).fit(
        read_benchmark_file(tmp_path / "ints.txt"), progress=False
    )
    for name, kind, history in (("i", pa.int64(), [1, 2, 3]), ("f", pa.float64(), [1.0, 2.0, 3.0])):
        table = pa.table({"items": pa.array([history], pa.list_(kind))})
        pq.write_table(table, tmp_path / f"{name}.parquet")
        score_file(rec, tmp_path / f"{name}.parquet", tmp_path / f"{name}-out.parquet", k=3, progress=False)
    as_ints, as_floats = (pq.read_table(tmp_path / f"{n}-out.parquet").to_pylist() for n in ("i", "f"))
    assert as_floats == as_ints and not as_floats[0]["empty_history"]  # 1.0 is item 1, not unknown
    pq.write_table(pa.table({"items": pa.array([[1.5]], pa.list_(pa.float64()))}), tmp_path / "h.parquet")
    with pytest.raises(DataError, match="row 0, column 'items': item id 1.5 is neither text nor an integer"):
        score_file(rec, tmp_path / "h.parquet", tmp_path / "x.parquet", progress=False)
    bad = {
        "open-quote.csv": ('id,items\n1,"1 2\n2,3 4\n', "spans several lines; is a quote left open"),
        "ragged.csv": ("id,items\n1,1 2,extra\n", "ragged.csv: cannot read the histories: CSV parse error"),
        "empty.csv": ("", "empty.csv: cannot read the histories: Empty CSV file"),
    }
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=message):
            score_file(rec, tmp_path / name, tmp_path / "x.parquet", progress=False)
    (tmp_path / "latin1.csv").write_bytes(b"id,items\n1,\xff\xfe\n")
    with pytest.raises(DataError, match="latin1.csv: cannot read the histories: .*UTF8"):
        score_file(rec, tmp_path / "latin1.csv", tmp_path / "x.parquet", progress=False)
    assert not (tmp_path / "x.parquet").exists()
