import numpy as np
import pytest

from bsarec import SequentialRecommender, read_interaction_log


@pytest.fixture(scope="module")
def string_id_log(tmp_path_factory):
    """A small log with string ids where each user walks along a chain of items."""
    rng = np.random.default_rng(0)
    rows = ["user,item,timestamp"]
    for u in range(120):
        start = int(rng.integers(0, 30))
        for t in range(int(rng.integers(6, 15))):
            rows.append(f"user-{u},sku-{(start + t) % 30:03d},{1000 + t}")
    path = tmp_path_factory.mktemp("log") / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted(string_id_log, tmp_path_factory):
    data = read_interaction_log(string_id_log, kcore=2)
    run_dir = tmp_path_factory.mktemp("run")
    rec = SequentialRecommender(
        "bsarec", epochs=8, hidden_size=32, max_len=10, num_heads=1, lr=0.005, batch_size=64
    ).fit(data, run_dir=run_dir, progress=False)
    return rec, run_dir


def test_recommend_speaks_original_ids_and_excludes_seen(fitted):
    rec, run_dir = fitted
    loaded = SequentialRecommender.load(run_dir)
    history = ["sku-003", "sku-004", "sku-005", "sku-006"]
    result = loaded.recommend(items=history, k=5)
    assert len(result.items) == 5 and all(str(i).startswith("sku-") for i in result.items)
    assert not set(history) & set(result.items)
    assert result.scores == sorted(result.scores, reverse=True)
    assert "sku-007" in result.items[:3]  # the chain continues
    with_seen = loaded.recommend(items=history, k=30, exclude_seen=False)
    assert set(history) <= set(with_seen.items)


def test_unknown_ids_are_reported_not_fatal(fitted):
    rec, _ = fitted
    result = rec.recommend(items=["nope", "sku-001"], k=3)
    assert result.unknown == ["nope"] and len(result.items) == 3 and not result.empty_history
    empty = rec.recommend(items=["nope"], k=3)
    assert empty.empty_history and len(empty.items) == 3
    cold = rec.recommend(user="no-such-user", k=3)
    assert cold.unknown == ["no-such-user"] and cold.empty_history and cold.items == empty.items


def test_known_user_uses_the_whole_history(fitted):
    rec, _ = fitted
    seq = rec.dataset.sequences[rec.dataset.user_row("user-0")]
    seen = {rec.dataset.item_ids[i] for i in seq}
    result = rec.recommend(user="user-0", k=5)
    assert len(result.items) == 5 and not seen & set(result.items)


def test_save_load_round_trip_keeps_metrics(fitted, tmp_path):
    rec, _ = fitted
    rec.save(tmp_path / "copy")
    again = SequentialRecommender.load(tmp_path / "copy")
    assert again.evaluate("test") == pytest.approx(rec.metrics["test"])
    assert again.recommend(items=["sku-001"], k=4).items == rec.recommend(items=["sku-001"], k=4).items


def test_allow_and_deny_shape_the_answer(fitted):
    rec, _ = fitted
    history = ["sku-003", "sku-004"]
    free = rec.recommend(items=history, k=5)
    denied = rec.recommend(items=history, k=5, deny=[free.items[0], "not-an-item"])
    assert free.items[0] not in denied.items and denied.items[:4] == free.items[1:5]
    allowed = rec.recommend(items=history, k=5, allow=["sku-010", "sku-011", "sku-003", "ghost"])
    assert set(allowed.items) == {"sku-010", "sku-011"}  # the seen sku-003 stays excluded; ghost is no item


def test_batch_equals_one_by_one_and_keeps_the_latest_items(fitted):
    rec, _ = fitted
    histories = [["sku-001", "sku-002"], [], ["zzz"], [f"sku-{i:03d}" for i in range(25)]]
    batch = rec.recommend_batch(histories, k=4, batch_size=3)
    for history, result in zip(histories, batch, strict=True):
        single = rec.recommend(items=history, k=4)
        assert result.items == single.items and result.scores == pytest.approx(single.scores)
        assert result.unknown == single.unknown and result.empty_history == single.empty_history
    assert batch[1].empty_history and batch[2].empty_history and batch[2].unknown == ["zzz"]
    # longer than max_len (10): only the last 10 items are read, but all 25 are excluded as seen
    tail = rec.recommend(items=[f"sku-{i:03d}" for i in range(15, 25)], k=4, exclude_seen=False)
    full = rec.recommend(items=[f"sku-{i:03d}" for i in range(25)], k=4, exclude_seen=False)
    assert tail.items == full.items
    assert not set(batch[3].items) & {f"sku-{i:03d}" for i in range(25)}


def test_load_refuses_weights_that_hold_nan(fitted, tmp_path):
    import pytest
    import torch
    from safetensors.torch import load_file, save_file

    from bsarec.errors import NonFiniteError

    fitted[0].save(tmp_path / "run")
    weights = load_file(tmp_path / "run" / "model.safetensors")
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, tmp_path / "run" / "model.safetensors")
    with pytest.raises(NonFiniteError, match=f"model.safetensors: {name} hold NaN"):
        SequentialRecommender.load(tmp_path / "run")


@pytest.mark.parametrize("length", [1, 2])
def test_a_dataset_too_short_to_train_on_is_refused(length):
    from bsarec.data.dataset import SequenceDataset
    from bsarec.errors import DataError

    short = SequenceDataset([np.arange(1, length + 1), np.arange(2, length + 2)], ["a", "b"], [None, *"xyz"])
    with pytest.raises(DataError, match="no user has"):
        SequentialRecommender("sasrec", epochs=1, hidden_size=16, max_len=10, num_heads=1).fit(
            short, progress=False
        )
