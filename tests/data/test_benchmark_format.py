import re

import numpy as np
import pytest

from bsarec.data.benchmark_format import read_benchmark_file, write_benchmark_file
from bsarec.errors import DataError


def test_reads_users_items_and_table_size(write):
    path = write("d.txt", "1 1 2 3\n2 4 2\n\n3 7\n")
    data = read_benchmark_file(path)
    assert data.user_ids == [1, 2, 3]
    assert [s.tolist() for s in data.sequences] == [[1, 2, 3], [4, 2], [7]]
    assert data.n_items == 8  # max item id + 1
    assert data.report["blank_lines_skipped"] == 1
    assert data.report["one_item_users"] == 1
    assert data.item_index(7) == 7 and data.item_index("7") == 7 and data.item_index(99) is None


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("1 2 3\n2 x 4\n", 2, "expected integer ids"),
        ("1 2 3\n2 1.5\n", 2, "expected integer ids"),
        ("-1 2 3\n", 1, "user id must be non-negative"),
        ("1 2 0 3\n", 1, "item id 0 is reserved for padding"),
        ("1 2 -3\n", 1, "item ids must be positive"),
        ("1 2 3\n2 3\n1 5\n", 3, "duplicate line for user 1 (first seen on line 1)"),
        ("1 2\n5\n", 2, "has no items"),
    ],
)
def test_malformed_lines_name_file_line_and_expectation(write, text, line, expected):
    path = write("bad.txt", text)
    with pytest.raises(DataError) as info:
        read_benchmark_file(path)
    assert f"{path}:{line}:" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_is_an_error(write, text):
    path = write("empty.txt", text)
    with pytest.raises(DataError, match="empty file"):
        read_benchmark_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_benchmark_file(tmp_path / "nope.txt")


def test_write_then_read_round_trip(write, tmp_path):
    data = read_benchmark_file(write("d.txt", "1 5 6\n2 6 5 7\n"))
    write_benchmark_file(data, tmp_path / "out.txt")
    again = read_benchmark_file(tmp_path / "out.txt")
    assert all(np.array_equal(a, b) for a, b in zip(data.sequences, again.sequences, strict=True))


@pytest.mark.parametrize("token", ["1_000", "+4", "٣", "1.0", "99999999999999999999"])
def test_only_plain_digits_are_ids(write, token):
    with pytest.raises(
        DataError,
        match=re.escape(f":2: expected integer ids (digits 0-9) separated by spaces, got {token!r}"),
    ):
        read_benchmark_file(write("bad.txt", f"1 2 3\n2 4 {token}\n"))


def test_a_huge_item_id_is_refused_not_allocated(write):
    with pytest.raises(DataError, match=":1: item id 5000000000 is beyond the largest supported"):
        read_benchmark_file(write("huge.txt", "1 2 5000000000\n"))


def test_a_byte_order_mark_is_not_part_of_the_first_id(write):
    assert read_benchmark_file(write("bom.txt", "\ufeff1 2 3\n2 3 4\n")).user_ids == [1, 2]
