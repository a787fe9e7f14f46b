"""The shared item representation: what it adds up, which items keep an id row, one table per step, and
every model trains with it."""

import numpy as np
import pytest
import torch

from bsarec.data.item_features import ItemFeatures, categorical_field, dense_field
from bsarec.models import MODELS, build_model
from bsarec.models.item_features import (
    FeatureItemEmbedding,
    attach_item_features,
    freeze_item_features,
)

N_ITEMS = 7


def features() -> ItemFeatures:
    values = {1: ["x"], 2: ["x", "y"], 3: ["y", "y", "x"], 5: ["z"]}  # 4 and 6 have no category
    vectors = {1: np.array([1.0, 0.0]), 2: np.array([0.0, 2.0]), 6: np.array([1.0, 1.0])}
    return ItemFeatures(
        N_ITEMS,
        [categorical_field("category", values, N_ITEMS)],
        [dense_field("text", vectors, N_ITEMS, 2)],
    )


def table_module(trained=None, features_only=False, id_dropout=0.0) -> FeatureItemEmbedding:
    torch.manual_seed(0)
    trained = torch.ones(N_ITEMS, dtype=torch.bool) if trained is None else trained
    return FeatureItemEmbedding(
        torch.nn.Embedding(N_ITEMS, 4), features(), trained, features_only, id_dropout
    )


def test_each_row_is_id_plus_mean_category_plus_projected_vector():
    module = table_module()
    table = module.weight.detach()
    ids, bag = module.ids.weight.detach(), module.categorical[0].weight.detach()
    project, missing = module.projections[0].weight.detach(), module.missing.detach()[0]
    code = {v: i + 1 for i, v in enumerate(features().categorical[0].vocabulary)}
    assert torch.allclose(
        table[2], ids[2] + (bag[code["x"]] + bag[code["y"]]) / 2 + project @ torch.tensor([0.0, 2.0])
    )
    assert torch.allclose(table[3], ids[3] + (2 * bag[code["y"]] + bag[code["x"]]) / 3 + missing)
    assert torch.allclose(table[4], ids[4] + bag[0] + missing)  # no category: the learned missing code
    assert torch.allclose(table[0], ids[0])  # padding: its id row only


def test_untrained_items_and_features_only_have_no_id_row_and_never_get_one():
    trained = torch.tensor([True, True, True, False, True, True, True])
    module = table_module(trained)
    plain = table_module(torch.ones(N_ITEMS, dtype=torch.bool))
    assert torch.allclose(module.weight[3], plain.weight[3] - plain.ids.weight[3])
    alone = table_module(features_only=True)
    assert torch.allclose(alone.weight[1:], (plain.weight - plain.ids.weight)[1:])
    assert torch.allclose(alone.weight[0], plain.ids.weight[0])
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(3):  # item 3 is a softmax negative of every step, and yet its id row stays zero
        loss = torch.nn.functional.cross_entropy(
            module(torch.tensor([1, 2])) @ module.weight.T, torch.tensor([2, 1])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert module.ids.weight[3].abs().sum() == 0 and module.ids.weight[4].abs().sum() > 0


def test_id_dropout_leaves_out_whole_id_rows_in_training_only_the_same_on_both_sides():
    module = table_module(id_dropout=0.5)
    ids, features_part = module.ids.weight.detach(), module.feature_part().detach()
    dropped = []
    for _ in range(20):
        module.ids.weight.data.add_(0.0)  # a new step: the weights' version changes
        table = module.weight.detach()
        for i in range(1, N_ITEMS):  # each item is either id + features or its features alone
            full, alone = (
                torch.allclose(table[i], ids[i] + features_part[i]),
                torch.allclose(table[i], features_part[i]),
            )
            assert full != alone
            dropped.append(alone)
        assert torch.allclose(table[0], ids[0])  # padding keeps its row
        assert torch.equal(
            module(torch.tensor([1, 2, 3, 4, 5, 6])).detach(), table[1:]
        )  # the inputs' rows too
    assert 0.3 < sum(dropped) / len(dropped) < 0.7
    module.eval()
    assert torch.allclose(module.weight.detach(), ids + features_part)  # evaluation: every id part
    with pytest.raises(ValueError, match="id_dropout"):
        table_module(id_dropout=1.0)


def test_the_table_is_computed_once_per_training_step(monkeypatch):
    module = table_module()
    calls = {"n": 0}
    real = FeatureItemEmbedding.table

    def counted(self):
        calls["n"] += 1
        return real(self)

    monkeypatch.setattr(FeatureItemEmbedding, "table", counted)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    for step in range(3):
        h = module(torch.tensor([[1, 2], [3, 4]])).sum(1)  # input side
        loss = torch.nn.functional.cross_entropy(h @ module.weight.T, torch.tensor([5, 6]))  # output side
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert calls["n"] == step + 1
    assert (
        module.categorical[0].weight.grad.abs().sum() > 0
        and module.projections[0].weight.grad.abs().sum() > 0
    )
    with torch.no_grad():
        first = module.weight
        assert module.weight is first and calls["n"] == 4  # evaluation reuses it until the weights change


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_with_item_features(name):
    torch.manual_seed(0)
    model = build_model(name, N_ITEMS, {"hidden_size": 8, "max_len": 5, "hidden_dropout": 0.1}, n_users=4)
    attach_item_features(model, features(), torch.ones(N_ITEMS, dtype=torch.bool))
    inputs = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 2, 3, 5], [1, 2, 3, 4, 5], [0, 0, 0, 6, 1]] * 2)
    targets = torch.tensor([5, 6, 6, 2] * 2)
    batch = {"inputs": inputs, "targets": targets}
    if model.needs_negatives:
        batch["negatives"] = torch.tensor([1, 1, 2, 3] * 2)
    if model.needs_users:
        batch["users"] = torch.tensor([0, 1, 2, 3] * 2)
    if model.needs_positives:
        batch["positives"] = inputs.roll(1, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    scores = model.encode(inputs[:2]) @ model.item_embeddings.T
    frozen = freeze_item_features(model)
    assert type(frozen.item_table()) is torch.nn.Embedding
    assert torch.allclose(frozen.encode(inputs[:2]) @ frozen.item_embeddings.T, scores, atol=1e-6)
