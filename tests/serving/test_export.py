"""Every model exports to ONNX and TorchScript, and the exported graphs agree with PyTorch within 1e-5."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bsarec import SequentialRecommender
from bsarec.cli import app
from bsarec.data.synthetic import generate_synthetic
from bsarec.models import MODELS
from bsarec.serving.export import ScoringGraph, export_run, load_metadata

pytestmark = pytest.mark.extras("export")


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=30, n_clusters=3, items_per_cluster=6, max_length=12, seed=6)


def fitted_run(data, model, path):
    settings = {"epochs": 1, "hidden_size": 16, "max_len": 8, "batch_size": 64}
    if model not in ("caser", "gru4rec", "fmlprec"):
        settings["num_heads"] = 2
    SequentialRecommender(model, **settings).fit(data, run_dir=path, progress=False)
    return path


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.slow
def test_onnx_and_torchscript_match_pytorch(data, tmp_path, model):
    import onnxruntime

    run = fitted_run(data, model, tmp_path / "run")
    rec = SequentialRecommender.load(run)
    history = torch.randint(0, rec.dataset.n_items, (7, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ScoringGraph(rec.model.eval())(history).numpy()
    onnx_meta = export_run(run, "onnx")
    session = onnxruntime.InferenceSession(onnx_meta["output"], providers=["CPUExecutionProvider"])
    got = session.run(None, {"history": history.numpy()})[0]
    assert np.array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    assert np.max(np.abs(got[finite] - expected[finite])) < 1e-5
    ts_meta = export_run(run, "torchscript")
    scripted = torch.jit.load(ts_meta["output"])
    with torch.no_grad():
        got = scripted(history).numpy()
    assert np.max(np.abs(got[finite] - expected[finite])) < 1e-5
    assert load_metadata(onnx_meta["output"])["item_ids"] == rec.dataset.item_ids


@pytest.mark.slow
def test_top_k_graph_and_cli(data, tmp_path):
    import onnxruntime

    run = fitted_run(data, "bsarec", tmp_path / "run")
    out = tmp_path / "top.onnx"
    result = CliRunner().invoke(
        app, ["export", str(run), "--format", "onnx", "--output", str(out), "--top-k", "5", "--exclude-seen"]
    )
    assert result.exit_code == 0, result.output
    rec = SequentialRecommender.load(run)
    history = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3]])
    ids, scores = onnxruntime.InferenceSession(str(out)).run(None, {"history": history.numpy()})
    expected = rec.recommend(items=[rec.dataset.item_ids[i] for i in (1, 2, 3)], k=5)
    assert [rec.dataset.item_ids[i] for i in ids[0]] == expected.items
    assert np.allclose(scores[0], expected.scores, atol=1e-5)


def test_unknown_format_is_refused(data, tmp_path):
    from bsarec.errors import ConfigError

    run = fitted_run(data, "sasrec", tmp_path / "run")
    with pytest.raises(ConfigError, match="format"):
        export_run(run, "tflite")
