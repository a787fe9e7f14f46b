"""Atomic writes: whole files only, with the user's umask."""

import os
import stat

import pytest

from bsarec.io import atomic_write_text


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    before = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.json", "{}")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "f.json").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left
