import numpy as np

from bsarec.data.synthetic import generate_synthetic


def test_deterministic_and_well_formed():
    a, b = generate_synthetic(n_users=50, seed=3), generate_synthetic(n_users=50, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences, strict=True))
    c = generate_synthetic(n_users=50, seed=4)
    assert not all(np.array_equal(x, y) for x, y in zip(a.sequences, c.sequences, strict=False))
    flat = np.concatenate(a.sequences)
    assert flat.min() >= 1 and flat.max() < a.n_items
    assert min(len(s) for s in a.sequences) >= 8


def test_users_keep_to_few_clusters_and_popularity_is_skewed():
    data = generate_synthetic(n_users=300, n_clusters=24, items_per_cluster=40)
    clusters_per_user = [len(np.unique((s - 1) // 40)) for s in data.sequences]
    assert max(clusters_per_user) <= 3
    counts = np.sort(data.item_counts()[1:])[::-1]
    assert counts[: len(counts) // 10].sum() > 0.3 * counts.sum()  # top 10% of items: >30% of events


def test_two_clusters_are_enough():
    data = generate_synthetic(n_users=10, n_clusters=2, items_per_cluster=4, max_length=8, seed=3)
    assert data.n_items == 2 * 4 + 1 and len(data.sequences) == 10
