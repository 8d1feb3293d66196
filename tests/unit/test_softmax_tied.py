"""``softmax.tied``: output weights tied to the item vectors, one table that pools a user and scores the items
(issue 21)."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.errors import ConfigError
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.softmax_regression import bag_params

torch = pytest.importorskip("torch")

from embedpipe.torchtrain import BagModelParams, train_bag_model  # noqa: E402
from embedpipe.torchtrain.bag_corpus import BagCorpus  # noqa: E402
from embedpipe.torchtrain.bag_model import CHECKPOINT_NAME, build_state  # noqa: E402
from embedpipe.torchtrain.bag_net import full_softmax_loss  # noqa: E402


def two_groups(rows: int = 60, seed: int = 0) -> BagCorpus:
    """Users who watch 4 of items 0-9 or 4 of items 10-19: items of one group should score each other."""
    rng = np.random.default_rng(seed)
    bags = [rng.choice(10, 4, replace=False) + 10 * (r % 2) for r in range(rows)]
    return BagCorpus(np.arange(0, 4 * rows + 1, 4), np.concatenate(bags))


TIED = BagModelParams(dim=4, epochs=30, batch_size=16, holdout=1, tied=True, device="cpu", seed=2)


@pytest.mark.parametrize("sampled", [0, 8])
def test_tied_output_weights_are_the_embedding(sampled):
    params = BagModelParams(**{**TIED.to_dict(), "sampled": sampled})
    state = build_state(20, params, torch.device("cpu"))
    assert state.model.out_weight is state.model.embedding
    assert len(list(state.model.parameters())) == 1  # one matrix, averaged once by replicas
    result = train_bag_model(two_groups(), None, params)
    np.testing.assert_array_equal(result.input_vectors, result.output_vectors)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    # the one table ranks alone: an item's cosine neighbours are its own group's
    unit = result.input_vectors / np.linalg.norm(result.input_vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :3]
    assert np.mean(nearest // 10 == np.arange(20)[:, None] // 10) > 0.9


def test_tied_gradient_reaches_the_embedding_from_both_sides():
    """The loss of a tied model is the untied one with out_weight = embedding (both terms in the gradient)."""
    state = build_state(20, TIED, torch.device("cpu"))
    model = state.model
    ids, offsets = torch.tensor([0, 1, 2, 11]), torch.tensor([0, 3, 4])
    weights, targets = torch.ones(4), torch.tensor([[3], [12]])
    loss = full_softmax_loss(model.encode(ids, offsets, weights), targets, model.out_weight)
    loss.backward()
    table = model.embedding.detach().clone().requires_grad_(True)
    pooled = torch.stack([table[:3].mean(0), table[11]])
    reference = full_softmax_loss(pooled, targets, table)
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(model.embedding.grad.to_dense(), table.grad)


def test_tied_resume_equals_uninterrupted(tmp_path):
    corpus = two_groups()
    full = train_bag_model(corpus, None, BagModelParams(**{**TIED.to_dict(), "epochs": 4}))
    train_bag_model(corpus, None, BagModelParams(**{**TIED.to_dict(), "epochs": 3}), checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).exists()
    resumed = train_bag_model(corpus, None, BagModelParams(**{**TIED.to_dict(), "epochs": 4}),
                              checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(full.input_vectors, resumed.input_vectors)


@pytest.mark.parametrize("kwargs", [{"hidden": (4,)}, {"objective": "regression"}])
def test_tied_needs_a_softmax_without_hidden_layers(kwargs):
    with pytest.raises(ConfigError) as err:
        BagModelParams(**{**TIED.to_dict(), **kwargs})
    assert str(err.value).startswith("config key 'tied' needs the softmax objective without hidden layers")


@pytest.mark.parametrize(("settings", "tied"), [
    ({}, True),  # unset: one table that ranks alone
    ({"export_output_vectors": "out"}, False),  # two towers asked for
    ({"hidden": [8]}, False),  # the output side is another width
    ({"tied": False}, False),
    ({"tied": True}, True),
])
def test_the_job_passes_softmax_tied(settings, tied):
    """Unset, ``tied`` resolves to tied unless hidden layers or an exported output table ask for two towers."""
    config = TrainConfig(input="i", output="o", method="softmax", settings=settings)
    assert bag_params(config, "softmax")["tied"] is tied
    assert "tied" not in bag_params(TrainConfig(input="i", output="o", method="regression"), "regression")


@pytest.mark.parametrize(("settings", "message"), [
    ({"tied": True, "hidden": [8]},
     "config key 'softmax.tied' needs no hidden layers (softmax.hidden is [8]): the output weights are the item "
     "vectors"),
    ({"tied": True, "export_output_vectors": "out"},
     "config key 'softmax.tied' leaves no second table to write: unset softmax.export_output_vectors or tied"),
])
def test_tied_with_two_towers_settings_is_a_one_line_error(settings, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(input="i", output="o", method="softmax", settings=settings)
    assert str(err.value) == message
