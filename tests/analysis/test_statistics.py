import itertools
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bsarec.analysis.statistics import (
    attention_filter,
    effective_filter,
    grouped_metrics,
    length_bucket,
    low_frequency_share,
    mean_pairwise_cosine,
    popularity_groups,
    spectrum_energy,
)


def test_identical_tokens_have_cosine_one_and_padding_is_ignored():
    states = torch.randn(1, 6, 4)
    states[0, 2:] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # 4 real positions, all the same vector
    real = torch.tensor([[False, False, True, True, True, True]])
    assert mean_pairwise_cosine(states, real) == pytest.approx(1.0)


def test_orthogonal_and_opposite_tokens():
    eye = torch.eye(3).unsqueeze(0)
    assert mean_pairwise_cosine(eye, torch.ones(1, 3, dtype=torch.bool)) == pytest.approx(0.0)
    opposite = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])
    assert mean_pairwise_cosine(opposite, torch.ones(1, 2, dtype=torch.bool)) == pytest.approx(-1.0)
    # sequences with fewer than 2 real positions do not count; none at all gives nan
    one = torch.tensor([[True, False, False]])
    assert math.isnan(mean_pairwise_cosine(eye, one))


def test_constant_sequence_has_energy_only_in_bin_zero():
    energy = spectrum_energy(torch.full((2, 8, 3), 2.0))
    assert energy[0] == pytest.approx(8 * 3 * 4.0)  # orthonormal: energy is preserved (N·d·value²)
    assert torch.allclose(energy[1:], torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert low_frequency_share(energy, 1) == pytest.approx(1.0)


def test_alternating_sequence_is_all_nyquist():
    x = torch.tensor([1.0, -1.0] * 4).view(1, 8, 1)
    energy = spectrum_energy(x)
    assert energy[-1] == pytest.approx(8.0) and energy[:-1].sum() == pytest.approx(0.0, abs=1e-12)


def test_effective_filter_is_one_on_kept_bins_and_beta_above():
    gain = effective_filter(torch.tensor([0.5, 2.0]), max_len=10, c=3)
    assert gain.shape == (6, 2)
    assert torch.equal(gain[:2], torch.ones(2, 2, dtype=torch.float64))
    assert torch.allclose(gain[2:], torch.tensor([0.25, 4.0], dtype=torch.float64).repeat(4, 1))


def test_popularity_thirds_and_length_buckets():
    counts = np.array([0, 5, 9, 1, 7, 3, 0])  # items 1..6
    groups = popularity_groups(counts)
    assert (
        groups[[2, 4]].tolist() == [0, 0]
        and groups[[1, 5]].tolist() == [1, 1]
        and groups[[3, 6]].tolist() == [2, 2]
    )
    assert [length_bucket(n) for n in (1, 5, 6, 10, 11, 20, 21, 50, 51, 300)] == [
        "1-5",
        "1-5",
        "6-10",
        "6-10",
        "11-20",
        "11-20",
        "21-50",
        "21-50",
        ">50",
        ">50",
    ]


def test_grouped_metrics_split_users():
    ranks = torch.tensor([0.0, 50.0, 2.0, math.inf])
    out = grouped_metrics(ranks, ["a", "b", "a", "b"])
    assert out["a"]["users"] == 2 and out["a"]["HR@5"] == 1.0 and out["b"]["HR@20"] == 0.0


@pytest.mark.extras("analysis")
@pytest.mark.slow
def test_analyze_writes_json_and_figures(tmp_path):
    from bsarec import SequentialRecommender
    from bsarec.cli import app
    from bsarec.data.synthetic import generate_synthetic

    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=10)
    for model in ("bsarec", "sasrec"):
        SequentialRecommender(model, epochs=1, hidden_size=16, max_len=10, num_heads=1).fit(
            data, run_dir=tmp_path / model, progress=False
        )
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path / "bsarec"),
            "--compare",
            str(tmp_path / "sasrec"),
            "--output",
            str(tmp_path / "a"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "a" / "analysis.json").read_text())
    bsarec, sasrec = summary["runs"]
    assert len(bsarec["oversmoothing_cosine"]) == 3 and len(bsarec["beta"]) == 2 and "beta" not in sasrec
    assert sum(v["users"] for v in bsarec["by_history_length"].values()) == 40
    assert len(sasrec["attention_band_gain"]) == 2 and len(sasrec["attention_band_gain"][0]) == 5
    for name in ("oversmoothing.png", "spectrum.png", "beta.png", "groups.png", "attention.png"):
        assert (tmp_path / "a" / name).stat().st_size > 1000


def one_map(a, padding=0):
    """A (1, 1, N, N) attention map whose first `padding` positions are padding, and its real mask."""
    n = a.size(0) + padding
    full = torch.zeros(n, n)
    full[padding:, padding:] = a
    real = torch.zeros(1, n, dtype=torch.bool)
    real[0, padding:] = True
    return full[None, None], real


def test_identity_attention_passes_every_frequency():
    maps, real = one_map(torch.eye(10), padding=3)  # the padding is left out
    result = attention_filter(maps, real)
    assert result["band_gain"] == pytest.approx([1.0] * 5)
    assert result["hc_to_dc"] == pytest.approx(1.0)


def test_uniform_attention_passes_only_the_constant():
    maps, real = one_map(torch.full((12, 12), 1 / 12))
    result = attention_filter(maps, real)
    assert result["band_gain"] == pytest.approx([1.0, 0.0, 0.0, 0.0, 0.0], abs=1e-9)
    assert result["hc_to_dc"] == pytest.approx(0.0, abs=1e-9)


def test_causal_running_mean_is_a_low_pass_filter():
    n = 16
    a = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]  # position m averages 0..m
    gains = attention_filter(*one_map(a))["band_gain"]
    assert gains[0] == pytest.approx(1.0)
    assert all(x > y for x, y in itertools.pairwise(gains)), gains
    assert 0.0 < gains[-1] < 0.5


def test_short_sequences_are_left_out():
    maps, real = one_map(torch.eye(5), padding=5)
    result = attention_filter(maps, real, min_length=8)
    assert all(math.isnan(g) for g in result["band_gain"]) and math.isnan(result["hc_to_dc"])


def test_models_expose_their_attention_maps():
    from bsarec.models import build_model

    inputs = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    for name in ("bsarec", "sasrec", "bert4rec"):
        model = build_model(name, 10, {"hidden_size": 8, "max_len": 6, "num_heads": 2}).eval()
        maps = model.attention_maps(inputs)
        assert len(maps) == 2 and maps[0].shape == (2, 2, 6, 6)
        assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 6))
        if name != "bert4rec":  # causal: no weight on later positions (user 1 has no padding)
            assert torch.all(maps[1][1][:, torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)] < 1e-6)
    assert build_model("fmlprec", 10, {"hidden_size": 8, "max_len": 6}).attention_maps(inputs) == []


@pytest.mark.extras("analysis")
def test_runs_on_two_datasets_get_one_panel_each(monkeypatch, tmp_path):
    """Oversmoothing of BSARec and SASRec on two datasets in one figure: a panel per dataset, both models in each."""
    from bsarec.analysis import report

    def run(model, dataset, users):
        groups = {"by_history_length": {"1-5": {"users": users, "NDCG@10": 0.1}}}
        groups["by_target_popularity"] = {"head": {"users": users, "NDCG@10": 0.2}}
        return {
            "run_dir": f"runs/{dataset}/{model}/seed42",
            "model": model,
            "dataset": dataset,
            "layers": ["embedding", "block 1"],
            "oversmoothing_cosine": [0.2, 0.5],
            "spectrum_energy": [[3.0, 1.0], [4.0, 0.5]],
            **groups,
        }

    figures = {}

    def record(fig, path):
        figures[path.name] = [
            (ax.get_title(), [line.get_label() for line in ax.get_lines()]) for ax in fig.axes
        ]
        return path

    monkeypatch.setattr(report, "save_figure", record)
    runs = [run("bsarec", "LastFM", 10), run("sasrec", "LastFM", 10), run("bsarec", "Beauty", 7)]
    runs.append(run("sasrec", "Beauty", 7))
    report.plot(runs, tmp_path)
    assert figures["oversmoothing.png"] == [
        ("Oversmoothing, LastFM", ["bsarec (seed42)", "sasrec (seed42)"]),
        ("Oversmoothing, Beauty", ["bsarec (seed42)", "sasrec (seed42)"]),
    ]
    assert [title for title, _ in figures["groups.png"]] == [
        "LastFM, by history length",
        "LastFM, by target popularity",
        "Beauty, by history length",
        "Beauty, by target popularity",
    ]
    assert len(figures["spectrum.png"]) == 4
