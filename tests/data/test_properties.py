"""Property-based tests of the readers and the preprocessing: whatever the input, a reader either loads it with
its documented meaning or raises DataError naming the file (and line or row where there is one)."""

import math

import numpy as np
import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bsarec.data.benchmark_format import read_benchmark_file
from bsarec.data.interaction_log import read_interaction_log
from bsarec.errors import DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.binary(max_size=300))
def test_benchmark_reader_on_arbitrary_bytes(tmp_path, data):
    path = tmp_path / "any.txt"
    path.write_bytes(data)
    try:
        dataset = read_benchmark_file(path)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    for seq in dataset.sequences:  # what loads keeps its meaning: positive item ids, table = max id + 1
        assert len(seq) and (seq > 0).all() and seq.max() < dataset.n_items


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 10**12), st.lists(st.integers(1, 10**6), min_size=1, max_size=6)),
        min_size=1,
        max_size=8,
        unique_by=lambda row: row[0],
    )
)
def test_benchmark_reader_keeps_huge_ids_and_order(tmp_path, rows):
    path = tmp_path / "ok.txt"
    path.write_text("".join(f"{u} " + " ".join(map(str, items)) + "\n" for u, items in rows))
    dataset = read_benchmark_file(path)
    assert [seq.tolist() for seq in dataset.sequences] == [items for _, items in rows]
    assert dataset.n_items == max(max(items) for _, items in rows) + 1


ids = st.one_of(
    st.integers(-(10**15), 10**15), st.text(min_size=1, max_size=6).filter(lambda s: s.strip() == s and s)
)


@FAST
@given(
    st.lists(
        st.tuples(
            ids,
            ids,
            st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=32), st.integers(0, 10**9)),
        ),
        min_size=1,
        max_size=25,
    )
)
@example(events=[("a", "NULL", float("nan")), ("b", "x", 1.0)])  # a NaN time is named before an odd id
def test_log_reader_loads_or_names_the_row(tmp_path, events):
    users = [str(u) for u, _, _ in events]
    items = [str(i) for _, i, _ in events]
    times = [float(t) for _, _, t in events]
    path = tmp_path / "events.parquet"
    pl.DataFrame({"user": users, "item": items, "timestamp": times}).write_parquet(path)
    try:
        dataset = read_interaction_log(path, kcore=1)
    except DataError as exc:
        message = str(exc)
        assert str(path) in message
        if any(math.isnan(t) for t in times):
            assert "NaN" in message and "row" in message
        return
    assert not any(math.isnan(t) for t in times)
    # every event is kept (k-core off), each user's items in time order, ties in file order
    assert dataset.num_interactions == len(events)
    for user, seq in zip(dataset.user_ids, dataset.sequences, strict=True):
        mine = [
            (t, n, i) for n, (u, i, t) in enumerate(zip(users, items, times, strict=True)) if u == str(user)
        ]
        expected = [i for _, _, i in sorted(mine, key=lambda x: (x[0], x[1]))]
        assert [str(dataset.item_ids[k]) for k in seq] == expected


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from("wxyz"), st.integers(0, 5)), min_size=1, max_size=30
    )
)
def test_duplicate_events_are_kept_as_repeats(tmp_path, events):
    path = tmp_path / "dups.csv"
    path.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in events))
    dataset = read_interaction_log(path, kcore=1)
    assert dataset.num_interactions == len(events)  # a repeated event is a repeated interaction
    assert np.concatenate(dataset.sequences).max() < dataset.n_items


def test_sparsity_stays_in_range_with_repeat_consumption():
    from bsarec.data.dataset import SequenceDataset

    repeats = SequenceDataset([np.array([1] * 500), np.array([1, 2] * 300)], ["a", "b"], [None, "x", "y"])
    assert math.isclose(repeats.stats()["sparsity"], 1 - 3 / 4)  # 3 of the 2 x 2 pairs occur
