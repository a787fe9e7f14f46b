"""The ONNX Runtime engine answers as the PyTorch one does: the same items in the same order and the same
scores within 1e-4, for every model, with item features and `where`, for known users (Caser's user rows) and raw
histories; and it is refused or replaced with the reason when it cannot serve."""

import pytest
import torch

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.data.item_features import read_item_features
from bsarec.errors import ConfigError
from bsarec.models import MODELS, model_parameters
from bsarec.serving.engine import OnnxEncoder, choose_engine

pytestmark = pytest.mark.extras("export")

HISTORIES = [["c00-i01", "c00-i02"], [], ["c01-i03"] * 12, ["c02-i05", "unknown", "c00-i07"]]


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)


def same_answers(torch_rec, onnx_rec, **request):
    for a, b in zip(
        torch_rec.recommend_batch(HISTORIES, k=6, **request),
        onnx_rec.recommend_batch(HISTORIES, k=6, **request),
        strict=True,
    ):
        assert a.items == b.items and a.unknown == b.unknown
        assert max((abs(x - y) for x, y in zip(a.scores, b.scores, strict=True)), default=0) < 1e-4


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.slow
def test_every_model_scores_the_same_with_onnx_runtime(data, tmp_path, model):
    settings = {"hidden_size": 16, "max_len": 10, "epochs": 1, "threads": 1}
    settings |= {"num_heads": 1} if "num_heads" in model_parameters(model) else {}
    SequentialRecommender(model, **settings).fit(data, run_dir=tmp_path / "run", progress=False)
    reference, served = (
        SequentialRecommender.load(tmp_path / "run"),
        SequentialRecommender.load(tmp_path / "run"),
    )
    assert choose_engine(served, "onnx") == "onnx" and served.encoder is not None
    same_answers(reference, served)
    for user in data.user_ids[:3]:  # a known user: Caser reads its user row
        a, b = reference.recommend(user=user, k=5), served.recommend(user=user, k=5)
        assert a.items == b.items and max(abs(x - y) for x, y in zip(a.scores, b.scores, strict=True)) < 1e-4


@pytest.mark.slow
def test_item_features_new_items_and_where_score_the_same(data, tmp_path):
    (tmp_path / "items.csv").write_text(
        "item,cluster\n" + "".join(f"{i},{i[:3]}\n" for i in data.item_ids[1:])
    )
    (tmp_path / "new.csv").write_text("item,cluster\nnew-1,c01\nnew-2,c02\n")
    features = read_item_features(tmp_path / "items.csv", data)
    SequentialRecommender("bsarec", hidden_size=16, max_len=10, num_heads=1, epochs=1, threads=1).fit(
        data, run_dir=tmp_path / "run", progress=False, item_features=features
    )
    reference, served = (
        SequentialRecommender.load(tmp_path / "run"),
        SequentialRecommender.load(tmp_path / "run"),
    )
    for rec in (reference, served):
        rec.add_items(tmp_path / "new.csv")
    choose_engine(served, "onnx")
    same_answers(reference, served)
    same_answers(reference, served, where={"cluster": ["c01"]})
    same_answers(reference, served, where={"cluster": ["c02"]}, deny=["c02-i01"])
    with pytest.raises(ConfigError, match="add items before choosing an engine"):
        served.add_items(tmp_path / "new.csv")


def test_an_engine_that_cannot_serve_is_refused_or_replaced(tiny_run, monkeypatch, caplog):
    rec = SequentialRecommender.load(tiny_run)
    with pytest.raises(ConfigError, match="--engine: expected one of"):
        choose_engine(rec, "tensorrt")

    def no_export(*args, **kwargs):
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    with pytest.raises(ConfigError, match="--engine onnx: RuntimeError: exporter says no"):
        choose_engine(rec, "onnx")
    assert choose_engine(rec, "auto") == "torch" and rec.encoder is None
    assert "serving with PyTorch: the ONNX engine is not available (exporter says no)" in caplog.text
    assert len(rec.recommend(items=["c00-i01"], k=3).items) == 3


@pytest.mark.extras("serve")
def test_the_workers_serve_the_graph_exported_once(tiny_run, tmp_path, monkeypatch):
    """`bsarec serve` exports while it checks the run; each worker loads that graph instead of exporting."""
    import asyncio

    import httpx

    from bsarec.serving.app import app_from_environment

    checked, reference = SequentialRecommender.load(tiny_run), SequentialRecommender.load(tiny_run)
    assert choose_engine(checked, "onnx") == "onnx"
    (tmp_path / "encoder.onnx").write_bytes(checked.encoder.graph)

    def no_export(*args, **kwargs):
        raise AssertionError("a worker exported the encoder again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    for name, value in {
        "RUN_DIR": tiny_run,
        "ENGINE": "onnx",
        "ONNX_GRAPH": tmp_path / "encoder.onnx",
    }.items():
        monkeypatch.setenv(f"BSAREC_SERVE_{name}", str(value))
    app = app_from_environment()

    async def ask():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service"
        ) as client:
            model = (await client.get("/model")).json()
            return model, (
                await client.post("/recommend", json={"items": ["c00-i01", "c00-i02"], "k": 5})
            ).json()

    model, answer = asyncio.run(ask())
    assert model["engine"] == "onnx"
    expected = reference.recommend(items=["c00-i01", "c00-i02"], k=5)
    assert answer["items"] == expected.items
    assert max(abs(a - b) for a, b in zip(answer["scores"], expected.scores, strict=True)) < 1e-4


def test_a_graph_of_another_kind_of_encoder_is_refused(tiny_run):
    rec = SequentialRecommender.load(tiny_run)
    choose_engine(rec, "onnx")

    class NeedsUsers(torch.nn.Module):  # Caser's encoder takes the user rows as a second input
        needs_users = True

    with pytest.raises(ConfigError, match="the ONNX graph given takes"):
        OnnxEncoder(NeedsUsers(), 10, graph=rec.encoder.graph)
