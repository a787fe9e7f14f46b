import itertools
import math

import pytest
import torch

from bsarec.data.split import EvalSet
from bsarec.evaluation.metrics import evaluate, metrics_from_ranks, target_ranks
from bsarec.scoring import top_k


class TableModel:
    """Scores come from a fixed table: user u (given as inputs[:, 0]) scores item i with table[u, i]."""

    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.item_embeddings = torch.eye(self.scores.size(1))

    def encode(self, inputs, users=None):
        return self.scores[inputs[:, 0]]

    def eval(self):
        return self


def evalset(targets, histories):
    offsets = torch.tensor([0] + [len(h) for h in histories]).cumsum(0)
    return EvalSet(
        inputs=torch.arange(len(targets)).unsqueeze(1),
        targets=torch.tensor(targets),
        history_items=torch.tensor([i for h in histories for i in h], dtype=torch.long),
        history_offsets=offsets,
        user_rows=torch.arange(len(targets)),
    )


SCORES = [[9, 1, 5, 3, 4, 2], [-1, 6, 5, 4, 3, 2]]


def test_ranks_exclude_history_and_padding():
    ranks = target_ranks(TableModel(SCORES), evalset([4, 1], [[2], [1]]), "exclude")
    assert ranks.tolist() == [0.0, math.inf]  # user 1's target is in its history: no hit possible


def test_ranks_with_the_reference_zero_score_masking():
    ranks = target_ranks(TableModel(SCORES), evalset([4, 1], [[2], [1]]), "zero")
    # user 0: padding row 0 (score 9) outranks the target; user 1: target scored 0, items 2..5 outrank it
    assert ranks.tolist() == [1.0, 4.0]


def test_metrics_from_hand_computed_ranks():
    m = metrics_from_ranks(torch.tensor([0.0, 4.0, math.inf, 12.0]))
    assert (
        m["HR@5"] == pytest.approx(0.5)
        and m["HR@10"] == pytest.approx(0.5)
        and m["HR@20"] == pytest.approx(0.75)
    )
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(6)) / 4)
    assert m["NDCG@20"] == pytest.approx((1 + 1 / math.log2(6) + 1 / math.log2(14)) / 4)
    assert m["MRR"] == pytest.approx((1 + 1 / 5 + 1 / 13) / 4)


def reference_ranks(scores, targets, histories):
    """Sort-based ranks: mask history and padding with -inf, then the target's position in the sort."""
    ranks = []
    for row, target in enumerate(targets):
        s = scores[row].clone()
        s[0] = -math.inf
        s[list(histories[row])] = -math.inf
        if target in histories[row]:
            ranks.append(math.inf)
            continue
        order = torch.argsort(s, descending=True).tolist()
        ranks.append(float(order.index(target)))
    return ranks


@pytest.mark.parametrize("chunk", [1 << 24, 7, 1])
def test_chunked_ranks_equal_a_sort_based_reference(chunk):
    torch.manual_seed(0)
    users, items = 37, 23
    scores = torch.randn(users, items)
    targets = torch.randint(1, items, (users,)).tolist()
    histories = [torch.randint(1, items, (int(torch.randint(0, 6, ())),)).tolist() for _ in range(users)]
    ranks = target_ranks(
        TableModel(scores), evalset(targets, histories), "exclude", user_batch=5, max_scores_per_chunk=chunk
    )
    assert ranks.tolist() == reference_ranks(scores, targets, histories)


def test_shares_of_the_users_rank_as_in_one_pass_tie_breaks_included():
    scores = torch.randint(0, 3, (29, 11)).float()  # many ties
    targets = torch.randint(1, 11, (29,)).tolist()
    data = evalset(targets, [[] for _ in targets])
    whole = target_ranks(TableModel(scores), data, user_batch=4)
    cuts = [0, 9, 10, 29]
    parts = [
        target_ranks(TableModel(scores), data, user_batch=4, rows=(a, b)) for a, b in itertools.pairwise(cuts)
    ]
    assert torch.equal(torch.cat(parts), whole)


@pytest.mark.parametrize("chunk", [3, 8, 50])
def test_top_k_in_item_chunks_equals_one_pass(chunk):
    torch.manual_seed(1)
    scores = torch.randn(6, 40)
    exclude = [torch.randint(1, 40, (5,)) for _ in range(6)]
    allowed = torch.rand(40) > 0.3
    inputs = torch.arange(6).unsqueeze(1)
    ids, values = top_k(TableModel(scores), inputs, 7, exclude=exclude, allowed=allowed)
    chunked_ids, chunked_values = top_k(
        TableModel(scores), inputs, 7, exclude=exclude, allowed=allowed, max_scores_per_chunk=chunk
    )
    assert torch.equal(chunked_ids, ids) and torch.equal(chunked_values, values)
    expected = scores.clone()
    expected[:, 0] = float("-inf")
    expected[:, ~allowed] = float("-inf")
    for row, items in enumerate(exclude):
        expected[row, items] = float("-inf")
    assert torch.equal(values, expected.topk(7, dim=1).values)


def test_top_k_never_returns_padding_or_excluded_items():
    model = TableModel(SCORES)
    ids, values = top_k(model, torch.tensor([[0], [1]]), 3, exclude=[torch.tensor([2]), torch.tensor([1])])
    assert ids.tolist() == [[4, 3, 5], [2, 3, 4]]
    assert values.tolist() == [[4, 3, 2], [5, 4, 3]]


class ConstantModel:
    """Scores every item 0: a dead ReLU output."""

    def __init__(self, n_items):
        self.item_embeddings = torch.zeros(n_items, 4)

    def encode(self, inputs, users=None):
        return torch.zeros(len(inputs), 4)

    def eval(self):
        return self


def test_ties_are_broken_at_random_not_in_the_targets_favour():
    evalset = make_evalset_for_ties(users=400, n_items=1000)
    metrics = evaluate(ConstantModel(1000), evalset)
    # 997 candidates (padding and the 2 history items excluded) all tie with the target: HR@10 ~ 10/997
    assert metrics["HR@10"] < 0.05
    assert metrics["HR@20"] > metrics["HR@5"]


def make_evalset_for_ties(users, n_items):
    from bsarec.data.split import EvalSet

    return EvalSet(
        inputs=torch.ones(users, 3, dtype=torch.long),
        targets=torch.full((users,), 7, dtype=torch.long),
        history_items=torch.tensor([1, 2] * users),
        history_offsets=torch.arange(0, 2 * users + 1, 2),
        user_rows=torch.arange(users),
    )


def test_sampled_candidates_are_distinct_and_never_history_or_target():
    from bsarec.evaluation.metrics import sampled_candidates

    evalset = make_evalset_for_ties(users=50, n_items=120)
    for weights in (None, torch.arange(120, dtype=torch.float64)):
        cands = sampled_candidates(evalset, 120, 99, weights, seed=3)
        assert cands.shape == (50, 99)
        for row in cands.tolist():
            assert len(set(row)) == 99
            assert not {0, 1, 2, 7} & set(row)
    again = sampled_candidates(evalset, 120, 99, None, seed=3)
    assert torch.equal(again, sampled_candidates(evalset, 120, 99, None, seed=3))  # fixed per seed


def test_popularity_sampling_prefers_popular_items():
    from bsarec.evaluation.metrics import sampled_candidates

    evalset = make_evalset_for_ties(users=200, n_items=1000)
    weights = torch.ones(1000, dtype=torch.float64)
    weights[500:] = 50.0
    cands = sampled_candidates(evalset, 1000, 20, weights, seed=0)
    assert (cands >= 500).float().mean() > 0.9


def test_sampled_ranking_counts_only_the_candidates():
    table = torch.eye(6)[:, :4]  # items 0..5; item i scores 1 on dim i for i < 4
    model = type("M", (), {})()
    model.item_embeddings = table
    model.encode = lambda inputs, users=None: torch.tensor([[0.0, 3.0, 2.0, 1.0]]).repeat(len(inputs), 1)
    model.eval = lambda: model
    from bsarec.data.split import EvalSet

    evalset = EvalSet(
        inputs=torch.ones(1, 2, dtype=torch.long),
        targets=torch.tensor([2]),
        history_items=torch.tensor([5]),
        history_offsets=torch.tensor([0, 1]),
        user_rows=torch.tensor([0]),
    )
    ranks = target_ranks(model, evalset, candidates=torch.tensor([[3, 4]]))
    assert ranks.tolist() == [0.0]  # item 1 scores higher but is not a candidate
    assert target_ranks(model, evalset).tolist() == [1.0]


def test_nan_scores_are_refused_not_ranked_first():
    from bsarec.errors import NonFiniteError
    from bsarec.evaluation.metrics import require_finite

    require_finite(torch.tensor([1.0, -3.0]), "scores")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteError, match="the model's scores are not finite"):
            require_finite(torch.tensor([1.0, bad]), "scores")
