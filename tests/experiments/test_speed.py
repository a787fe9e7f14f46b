import pytest

from bsarec.data.synthetic import generate_synthetic
from bsarec.experiments.speed import run_speed_benchmark


@pytest.mark.slow
def test_speed_benchmark_reports_both_modes(tmp_path):
    generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=10, max_length=20).save(tmp_path / "tiny")
    result = run_speed_benchmark(str(tmp_path / "tiny"), None, "bsarec", None, steps=2, repeats=1)
    for mode in ("ours", "straightforward"):
        m = result[mode]
        assert m["samples_per_s"] > 0 and m["seconds_per_valid_pass"] > 0
        assert m["gflop_per_step"] > 0 and m["peak_rss_mb_so_far"] > 0
    # the last-position-only final block does strictly less arithmetic than the full forward pass
    assert result["ours"]["gflop_per_step"] < result["straightforward"]["gflop_per_step"]
    assert "reference_code_reported" not in result
