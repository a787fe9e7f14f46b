"""Two processes with DistributedDataParallel (gloo) train like one process with the same global batch."""

import itertools
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.distributed import ProcessGroup
from bsarec.run_dir import read_history

# no dropout: each process draws its own dropout masks, so with dropout the runs agree only in distribution
SETTINGS = ["hidden_size=16", "max_len=12", "patience=100", "hidden_dropout=0", "attn_dropout=0"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "data"
    data = generate_synthetic(n_users=200, n_clusters=4, items_per_cluster=10, max_length=20, seed=8)
    data.save(path)
    samples = len(leave_one_out(data, 12).train_targets)
    # a batch size that leaves one sample for the last batch: one process gets an empty share of it
    batch = next(b for b in range(40, samples) if samples % b == 1)
    return path, batch


def train(dataset, output, model, nproc, extra=(), settings=SETTINGS):
    path, batch = dataset
    settings = [a for s in [*settings, f"batch_size={batch}", *extra] for a in ("--set", s)]
    command = [sys.executable, "-m", "bsarec", "train", "--model", model, "--dataset", str(path), *settings]
    command += ["--epochs", "3", "--threads", "1", "--no-progress", "--output", str(output)]
    return run([*command, "--nproc", str(nproc)])


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize(
    "model, extra",
    [("bsarec", ("softmax_negatives=20",)), ("sasrec", ())],  # shared sampled items; per-sample negatives
)
@pytest.mark.slow
def test_two_processes_equal_one_process(dataset, tmp_path, model, extra):
    train(dataset, tmp_path / "one", model, 1, extra)
    two = train(dataset, tmp_path / "two", model, 2, extra)
    assert two.stdout.count("best epoch") == 1  # only rank 0 reports

    one_history, two_history = read_history(tmp_path / "one"), read_history(tmp_path / "two")
    assert len(two_history) == len(one_history) == 3  # written once, by rank 0
    for a, b in zip(one_history, two_history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["valid_NDCG@20"] == pytest.approx(a["valid_NDCG@20"], abs=1e-3)
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-4, msg=name)
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())["test"]
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())["test"]
    assert b == pytest.approx(a, abs=1e-3)


@pytest.mark.slow
def test_a_two_process_run_resumes_exactly(dataset, tmp_path):
    """With dropout on: the checkpoint must restore every process's own random state."""
    with_dropout = [s for s in SETTINGS if "dropout" not in s]
    train(dataset, tmp_path / "straight", "bsarec", 2, settings=with_dropout)
    cut = tmp_path / "cut"
    train(dataset, cut, "bsarec", 2, settings=with_dropout)
    # cut it off after epoch 2: drop its results and the newest checkpoint
    (cut / "metrics.json").unlink()
    for path in (cut / "checkpoints").glob("epoch0003*"):
        path.unlink()
    resumed = run(
        [sys.executable, "-m", "bsarec", "train", "--resume", str(cut), "--nproc", "2", "--no-progress"]
    )
    assert "resuming at epoch 2, batch 0" in resumed.stderr
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    # the last epoch's weights (the best ones may predate the cut): every process's dropout must have matched
    last = "checkpoints/epoch0003-batch000000.safetensors"
    wa, wb = load_file(tmp_path / "straight" / last), load_file(cut / last)
    assert all(torch.equal(wa[k], wb[k]) for k in wa if k.startswith("model."))


def test_shares_are_disjoint_cover_everything_and_differ_by_at_most_one():
    for n in (0, 1, 5, 256, 257):
        for world in (1, 2, 3, 8):
            bounds = [ProcessGroup(rank, world).bounds(n) for rank in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1
