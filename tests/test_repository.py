"""What the repository must never hold: run directories, checkpoints, weights or archives, or any file over
1 MB (a clone should download the project, not its experiments)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".tar", ".tar.gz", ".tgz", ".zip", ".db")


def tracked_files() -> list[str]:
    try:
        listing = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"this test reads the repository's file list with git: {error}")
    return listing.splitlines()


def test_no_checkpoints_weights_archives_or_run_directories_are_tracked():
    files = tracked_files()
    assert files, "git lists no files"
    offending = [
        f
        for f in files
        if f.endswith(FORBIDDEN_SUFFIXES)
        or "/checkpoints/" in f
        or f.startswith(("runs/", "benchmarks/runs/"))
    ]
    assert offending == []


def test_no_tracked_file_is_over_one_megabyte():
    sizes = {f: (ROOT / f).stat().st_size for f in tracked_files() if (ROOT / f).is_file()}
    assert {f: s for f, s in sizes.items() if s > 1_000_000} == {}


def test_every_benchmark_grid_is_listed_in_the_benchmarks_readme():
    script = (ROOT / "benchmarks" / "grids.sh").read_text()
    grids = set(re.findall(r"^  ([a-z0-9-]+(?:\|[a-z0-9-]+)*)\)", script, flags=re.MULTILINE))
    names = {name for case in grids for name in case.split("|")}
    assert {"baselines-lastfm", "best-candidates", "best-recommender"} <= names
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in readme) == []
