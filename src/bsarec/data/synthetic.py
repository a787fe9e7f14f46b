"""The embedded default data: a deterministic generator of user sequences with known structure.

Items are grouped into clusters, each cluster an ordered "chain" (think of a series, an album, a trend).
- Long-term interest: every user keeps to 2-3 favourite clusters, drawn with Zipf-skewed cluster popularity.
- Short-term structure: bursts (the user stays in the current cluster with high probability), sequential
  steps along the chain (the next item tends to follow the current one), and repeats of recent items.
- Drifting trends: a global clock moves each cluster's "hot" position along its chain, so what is popular
  depends on when the user is active.
- Popularity skew: within a cluster, items are also drawn from a Zipf distribution.
A popularity ranking captures only the last point; a sequential model can learn all of them.
"""

from __future__ import annotations

import numpy as np

from bsarec.data.dataset import SequenceDataset


def generate_synthetic(
    n_users: int = 800,
    n_clusters: int = 24,
    items_per_cluster: int = 40,
    min_length: int = 8,
    max_length: int = 60,
    seed: int = 0,
    p_stay: float = 0.8,
    p_next: float = 0.55,
    p_repeat: float = 0.05,
) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    n_items = n_clusters * items_per_cluster
    cluster_pop = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    cluster_pop /= cluster_pop.sum()
    within_pop = 1.0 / np.arange(1, items_per_cluster + 1) ** 1.0
    within_pop /= within_pop.sum()
    # Shuffle which chain position is "popular" so that popularity and chain order are not the same thing.
    pop_order = np.stack([rng.permutation(items_per_cluster) for _ in range(n_clusters)])
    sequences = []
    for _ in range(n_users):
        n_fav = min(int(rng.integers(2, 4)), n_clusters)  # the same draws as before for 3+ clusters
        favourites = rng.choice(n_clusters, size=n_fav, replace=False, p=cluster_pop)
        length = int(np.clip(rng.geometric(1.0 / 25.0) + min_length, min_length, max_length))
        clock = rng.integers(0, items_per_cluster)  # when this user is active: the trend position
        cluster = rng.choice(favourites)
        position = int(rng.integers(0, items_per_cluster))
        seq: list[int] = []
        for step in range(length):
            if seq and rng.random() > p_stay:
                cluster = rng.choice(favourites)
                position = int((clock + step // 4 + rng.integers(0, 5)) % items_per_cluster)  # trend drift
            elif seq and rng.random() < p_repeat:
                seq.append(seq[-1 - int(rng.integers(0, min(len(seq), 5)))])
                continue
            elif seq and rng.random() < p_next:
                position = (position + 1) % items_per_cluster
            else:
                position = int(pop_order[cluster][rng.choice(items_per_cluster, p=within_pop)])
            seq.append(int(cluster) * items_per_cluster + position + 1)
        sequences.append(np.asarray(seq, dtype=np.int64))
    item_ids: list = [
        None,
        *[f"c{c:02d}-i{i:02d}" for c in range(n_clusters) for i in range(items_per_cluster)],
    ]
    user_ids = [f"u{u:05d}" for u in range(n_users)]
    report = {"format": "synthetic", "seed": seed, "n_items": n_items}
    return SequenceDataset(sequences, user_ids, item_ids, name="synthetic", report=report)
