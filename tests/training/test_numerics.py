"""The training step's arithmetic: bf16 autocast where asked (and only in training), TF32 only on CUDA."""

import pytest
import torch

from bsarec import SequentialRecommender, api
from bsarec.config import RunConfig
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError
from bsarec.training import numerics
from bsarec.training.numerics import cuda_matmul_precision, training_autocast, warn_if_slow_precision


def test_bf16_runs_the_training_forward_in_bfloat16_and_evaluation_in_fp32(monkeypatch):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=4)
    seen = {"train": set(), "eval": set()}

    def record(module, inputs, output):
        seen["train" if module.training else "eval"].add(output.dtype)

    real_build = api.build_run_model

    def build_with_hook(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.blocks[0].ffn.dense_in.register_forward_hook(record)
        return model

    monkeypatch.setattr(api, "build_run_model", build_with_hook)
    rec = SequentialRecommender("bsarec", precision="bf16", epochs=2, hidden_size=16, max_len=8)
    rec.fit(data, progress=False)
    assert seen["train"] == {torch.bfloat16} and seen["eval"] == {torch.float32}
    assert all(p.dtype == torch.float32 for p in rec.model.parameters())  # weights stay fp32
    plain = SequentialRecommender("bsarec", epochs=2, hidden_size=16, max_len=8).fit(data, progress=False)
    first_bf16, first_fp32 = rec.result.history[0]["loss"], plain.result.history[0]["loss"]
    assert first_bf16 == pytest.approx(first_fp32, rel=0.02) and first_bf16 != first_fp32


def test_tf32_is_a_cuda_mode_and_is_restored():
    with pytest.raises(ConfigError, match="precision: tf32 is a mode of CUDA matrix products"):
        RunConfig(precision="tf32").torch_device()
    with pytest.raises(ConfigError, match="precision: expected one of"):
        RunConfig(precision="fp16")
    before = torch.backends.cuda.matmul.allow_tf32
    with cuda_matmul_precision("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before
    assert (
        not training_autocast("fp32", "cpu")._enabled and training_autocast("bf16", "cuda:0").device == "cuda"
    )


def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(monkeypatch, caplog):
    monkeypatch.setattr(numerics, "cpu", lambda: {"model": "Old CPU", "bf16": False})
    with caplog.at_level("WARNING", logger="bsarec"):
        assert warn_if_slow_precision("bf16", "cpu")
    assert "Old CPU" in caplog.text and "fp32" in caplog.text
    assert not warn_if_slow_precision("fp32", "cpu")
    assert not warn_if_slow_precision("bf16", "cuda:0")  # GPUs compute bf16 natively
    monkeypatch.setattr(numerics, "cpu", lambda: {"model": "New CPU", "bf16": True})
    assert not warn_if_slow_precision("bf16", "cpu")
