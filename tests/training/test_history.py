import pytest

from bsarec.errors import DataError
from bsarec.run_dir import read_history


def test_read_history_names_the_file_and_line_of_a_bad_record(tmp_path):
    (tmp_path / "history.jsonl").write_text('{"epoch": 0, "loss": 1.5}\n{"epoch": 1, "lo\n')
    with pytest.raises(DataError, match=r"history\.jsonl, line 2: expected one JSON object"):
        read_history(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_history(tmp_path / "elsewhere")
    (tmp_path / "history.jsonl").write_text('{"epoch": 0, "loss": 1.5}\n')
    assert read_history(tmp_path) == [{"epoch": 0, "loss": 1.5}]
