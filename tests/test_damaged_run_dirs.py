"""A damaged run directory gets an error of ours that names the damaged file, never a raw traceback: for
`SequentialRecommender.load` (evaluate, recommend, serve, export) and for `resume`."""

import json
import shutil

import numpy as np
import pytest

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.errors import ConfigError, DataError, NonFiniteError

OURS = (ConfigError, DataError, NonFiniteError)


def write_bytes(name, data):
    return lambda run: (run / name).write_bytes(data)


def edit_json(name, change):
    def damage(run):
        (run / name).write_text(json.dumps(change(json.loads((run / name).read_text()))))

    return damage


def truncate(name):
    return lambda run: (run / name).write_bytes(
        (run / name).read_bytes()[: len((run / name).read_bytes()) // 2]
    )


def other_dataset(run):
    data = generate_synthetic(n_users=40, n_clusters=4, items_per_cluster=10, max_length=14, seed=5)
    shutil.rmtree(run / "dataset")
    data.save(run / "dataset")


def swapped_sequences(run):
    """The same users, items and lengths, but another user's items in each sequence: only a fingerprint
    tells it from the run's own dataset."""
    path = run / "dataset" / "sequences.npz"
    with np.load(path) as npz:
        items, offsets = npz["items"].copy(), npz["offsets"]
    np.savez_compressed(path, items=items[::-1].copy(), offsets=offsets)


def out_of_range_items(run):
    path = run / "dataset" / "sequences.npz"
    with np.load(path) as npz:
        items, offsets = npz["items"].copy(), npz["offsets"]
    items[0] = 10_000
    np.savez_compressed(path, items=items, offsets=offsets)


DAMAGES = {
    "weights empty": (write_bytes("model.safetensors", b""), "model.safetensors"),
    "weights random": (write_bytes("model.safetensors", bytes(range(256)) * 8), "model.safetensors"),
    "weights truncated": (truncate("model.safetensors"), "model.safetensors"),
    "weights missing": (lambda run: (run / "model.safetensors").unlink(), "model.safetensors"),
    "config not JSON": (write_bytes("config.json", b"{model: sasrec"), "config.json"),
    "config a list": (write_bytes("config.json", b"[1, 2]"), "config.json"),
    "config wrong type": (edit_json("config.json", lambda c: {**c, "hidden_size": "big"}), "config.json"),
    "config unknown key": (edit_json("config.json", lambda c: {**c, "colour": 1}), "config.json"),
    "config other shape": (edit_json("config.json", lambda c: {**c, "hidden_size": 32}), "hidden_size is 32"),
    "config lr edited": (
        edit_json("config.json", lambda c: {**c, "lr": 0.5}),
        "lr is 0.5, trained with 0.001",
    ),
    "dataset of another run": (other_dataset, "dataset: not the dataset this run was trained on"),
    "dataset same size, sequences swapped": (swapped_sequences, "dataset: not the dataset this run"),
    "identity not JSON": (write_bytes("identity.json", b"{"), "identity.json"),
    "dataset missing": (lambda run: shutil.rmtree(run / "dataset"), "dataset"),
    "sequences random": (write_bytes("dataset/sequences.npz", b"PK\x03\x04garbage"), "sequences.npz"),
    "sequences out of range": (out_of_range_items, "sequences.npz"),
    "id maps not JSON": (write_bytes("dataset/id_maps.json", b"\xff\xfe"), "id_maps.json"),
    "id maps wrong shape": (write_bytes("dataset/id_maps.json", b'{"users": 3}'), "id_maps.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_directory_gets_a_clear_error_naming_the_file(tiny_run, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    apply, named = DAMAGES[damage]
    apply(run)
    with pytest.raises(OURS) as error:
        SequentialRecommender.load(run)
    assert named in str(error.value)
