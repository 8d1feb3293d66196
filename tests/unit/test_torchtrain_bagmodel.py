"""Correctness of the bag models: losses and gradients vs a NumPy loop, sampled vs full softmax,
encode_bags, hold-outs, determinism, checkpoints, divergence, bad params. No Spark; tiny inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from embedpipe.errors import ConfigError, EmptyResultError, InputError, TrainingDivergedError
from embedpipe.torchtrain import (
    BagCorpus,
    BagModelParams,
    BagTrainingState,
    TrainProgress,
    encode_bags,
    train_bag_model,
)
from embedpipe.torchtrain.bag_model import CHECKPOINT_FORMAT, CHECKPOINT_NAME, holdout_split, proposal_distribution
from embedpipe.torchtrain.bag_net import BagNet, full_softmax_loss, regression_loss, sampled_softmax_loss

# --- a slow, obviously correct NumPy reference --------------------------------------------------


def np_params(net: BagNet) -> dict[str, np.ndarray]:
    return {name: p.detach().double().numpy().copy() for name, p in net.named_parameters()}


def np_encode(p: dict[str, np.ndarray], bags, combiner: str, n_hidden: int) -> list[np.ndarray]:
    """Pool each bag [(id, weight), ...] entry by entry, then the ReLU layers."""
    out = []
    for bag in bags:
        h = np.zeros(p["embedding"].shape[1])
        for i, w in bag:
            h = h + w * p["embedding"][i]
        if bag and combiner == "mean":
            h = h / sum(w for _, w in bag)
        if bag and combiner == "sqrtn":
            h = h / np.sqrt(sum(w * w for _, w in bag))
        for layer in range(n_hidden):
            h = np.maximum(0.0, p[f"hidden.{layer}.weight"] @ h + p[f"hidden.{layer}.bias"])
        out.append(h)
    return out


def np_full_softmax(p, bags, targets, combiner, n_hidden) -> float:
    losses = []
    for h, row_targets in zip(np_encode(p, bags, combiner, n_hidden), targets, strict=True):
        logits = np.array([h @ p["out_weight"][i] for i in range(len(p["out_weight"]))])
        for t in row_targets:
            losses.append(np.log(np.sum(np.exp(logits))) - logits[t])
    return float(np.mean(losses))


def np_sampled_softmax(p, bags, targets, negatives, log_expected, combiner, n_hidden) -> float:
    """Loss of each (row, target) over [target] + the negatives that are not the target itself."""
    losses = []
    for h, row_targets in zip(np_encode(p, bags, combiner, n_hidden), targets, strict=True):
        for t in row_targets:
            true = h @ p["out_weight"][t] - log_expected[t]
            logits = [true]
            for n in negatives:
                if n != t:
                    logits.append(h @ p["out_weight"][n] - log_expected[n])
            losses.append(np.log(np.sum(np.exp(logits))) - true)
    return float(np.mean(losses))


def np_regression(p, bags, targets, combiner, n_hidden) -> float:
    preds = [p["head.weight"][0] @ h + p["head.bias"][0] for h in np_encode(p, bags, combiner, n_hidden)]
    return float(np.mean([(y - t) ** 2 for y, t in zip(preds, targets, strict=True)]))


def numeric_grads(loss_fn, p: dict[str, np.ndarray], eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences of a float64 loss, one parameter entry at a time."""
    grads = {}
    for name, value in p.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            up = loss_fn(p)
            value[idx] = old - eps
            down = loss_fn(p)
            value[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads[name] = g
    return grads


def torch_grads(net: BagNet, loss: torch.Tensor) -> dict[str, np.ndarray]:
    net.zero_grad(set_to_none=True)
    loss.backward()
    out = {}
    for name, p in net.named_parameters():
        g = p.grad
        out[name] = np.zeros(tuple(p.shape)) if g is None else (g.to_dense() if g.is_sparse else g).numpy()
    return out


BAGS = [[(0, 1.0), (2, 2.0), (3, 1.0)], [(1, 0.5), (4, 3.0)], [(2, 1.0), (2, 1.0), (0, 2.0), (5, 1.0)]]
VOCAB = 6


def tensors(bags):
    ids = torch.tensor([i for bag in bags for i, _ in bag])
    weights = torch.tensor([w for bag in bags for _, w in bag], dtype=torch.float64)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(b) for b in bags])]))
    return ids, offsets, weights


def make_net(objective: str, combiner: str, hidden=(4,), sparse_output=False, seed=0) -> BagNet:
    torch.manual_seed(seed)
    net = BagNet(VOCAB, 3, hidden, combiner, objective, sparse_output=sparse_output).double()
    if objective == "softmax":  # random (not zero) output rows, so every gradient path is exercised
        with torch.no_grad():
            net.out_weight.normal_()
    return net


@pytest.mark.parametrize("combiner", ["mean", "sqrtn", "sum"])
@pytest.mark.parametrize("hidden", [(), (4,)])
def test_full_softmax_loss_and_gradients_match_numpy(combiner, hidden):
    net = make_net("softmax", combiner, hidden)
    targets = [[1, 4], [0, 5], [3, 3]]
    h = net.encode(*tensors(BAGS))
    loss = full_softmax_loss(h, torch.tensor(targets), net.out_weight)
    p = np_params(net)
    reference = np_full_softmax(p, BAGS, targets, combiner, len(hidden))
    assert float(loss.detach()) == pytest.approx(reference, rel=1e-10)
    expected = numeric_grads(lambda q: np_full_softmax(q, BAGS, targets, combiner, len(hidden)), p)
    for name, grad in torch_grads(net, loss).items():
        np.testing.assert_allclose(grad, expected[name], atol=1e-7, err_msg=name)


@pytest.mark.parametrize("hidden", [(), (4,)])
def test_sampled_softmax_with_log_q_and_accidental_hits_matches_numpy(hidden):
    net = make_net("softmax", "mean", hidden, sparse_output=True)
    targets = [[1], [0], [3]]
    negatives = [0, 2, 2, 5, 3]  # repeats and hits (0 for row 2, 3 for row 3) on purpose
    q = proposal_distribution(np.array([5, 1, 3, 2, 8, 1]), 0.75)
    log_expected = np.log(len(negatives) * q)
    log_expected_t = torch.from_numpy(log_expected)
    h = net.encode(*tensors(BAGS))
    t, n = torch.tensor(targets), torch.tensor(negatives)
    loss = sampled_softmax_loss(h, t, net.out_weight, n, log_expected_t[t], log_expected_t[n])
    p = np_params(net)

    def ref(q_):
        return np_sampled_softmax(q_, BAGS, targets, negatives, log_expected, "mean", len(hidden))

    assert float(loss.detach()) == pytest.approx(ref(p), rel=1e-10)
    expected = numeric_grads(ref, p)
    grads = torch_grads(net, loss)
    assert net.out_weight.grad.is_sparse  # only the sampled rows are touched
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, expected[name], atol=1e-7, err_msg=name)


def test_sampled_softmax_over_every_item_once_equals_full_softmax():
    """Uniform Q and every item drawn once: log-Q shifts all logits alike and hit removal drops the
    target's duplicate, so the sampled loss and its gradients are the full softmax's."""
    net = make_net("softmax", "sqrtn", (4,), sparse_output=True)
    targets = torch.tensor([[1, 2], [0, 4], [5, 3]])
    h = net.encode(*tensors(BAGS))
    full = full_softmax_loss(h, targets, net.out_weight)
    full_grads = torch_grads(net, full)
    h = net.encode(*tensors(BAGS))
    every = torch.arange(VOCAB)
    log_expected = torch.zeros(VOCAB, dtype=torch.float64)  # log(S * 1/V) = 0
    sampled = sampled_softmax_loss(h, targets, net.out_weight, every, log_expected[targets],
                                   log_expected[every])
    assert float(sampled.detach()) == pytest.approx(float(full.detach()), rel=1e-12)
    for name, grad in torch_grads(net, sampled).items():
        np.testing.assert_allclose(grad, full_grads[name], atol=1e-12, err_msg=name)


def test_padded_targets_of_short_rows_do_not_count():
    """A row shorter than holdout + 1 pads its targets (target_mask 0); the loss is the mean over real ones."""
    net = make_net("softmax", "mean", (), sparse_output=True)
    targets = torch.tensor([[1, 4], [0, 0], [3, 3]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        h = net.encode(*tensors(BAGS))
    masked = full_softmax_loss(h, targets, net.out_weight.detach(), mask)
    real = [(0, 1), (0, 4), (1, 0), (2, 3)]
    one_by_one = [full_softmax_loss(h[r:r + 1], torch.tensor([[t]]), net.out_weight.detach()) for r, t in real]
    assert float(masked) == pytest.approx(float(sum(one_by_one)) / len(real), rel=1e-12)
    every = torch.arange(VOCAB)
    zeros = torch.zeros(VOCAB, dtype=torch.float64)  # every item once, uniform Q: the sampled loss is the full one
    sampled = sampled_softmax_loss(h, targets, net.out_weight.detach(), every, zeros[targets], zeros[every],
                                   target_mask=mask)
    assert float(sampled) == pytest.approx(float(masked), rel=1e-12)


def test_short_rows_hold_out_all_but_one_item():
    held, real, kept, kept_offsets = holdout_split(np.array([0, 2, 7]), 3, np.random.default_rng(0))  # 2, 5 items
    assert real.tolist() == [[True, False, False], [True, True, True]]
    assert held[0, 1] == held[0, 2] == held[0, 0] and held[0, 0] in (0, 1)
    assert kept_offsets.tolist() == [0, 1, 3] and len(kept) == 3
    assert sorted(held[real].tolist() + kept.tolist()) == list(range(7))


def test_sampled_softmax_gradient_approaches_the_full_one():
    """Averaged over many draws from a skewed Q, the corrected sampled gradient nears the full
    gradient, and more negatives per draw bring it closer (the estimator is consistent)."""
    net = make_net("softmax", "mean", (), sparse_output=True)
    targets = torch.tensor([[1], [4], [5]])
    q = proposal_distribution(np.array([40, 1, 8, 3, 20, 2]), 1.0)
    full = full_softmax_loss(net.encode(*tensors(BAGS)), targets, net.out_weight)
    reference = np.concatenate([g.ravel() for g in torch_grads(net, full).values()])
    rng = np.random.default_rng(0)
    errors = []
    for s in (3, 60):
        log_expected = torch.from_numpy(np.log(s * q))
        total = np.zeros_like(reference)
        draws = 300
        for _ in range(draws):
            neg = torch.from_numpy(rng.choice(VOCAB, size=s, p=q))
            h = net.encode(*tensors(BAGS))
            loss = sampled_softmax_loss(h, targets, net.out_weight, neg, log_expected[targets],
                                        log_expected[neg])
            total += np.concatenate([g.ravel() for g in torch_grads(net, loss).values()])
        errors.append(np.linalg.norm(total / draws - reference) / np.linalg.norm(reference))
    assert errors[1] < 0.05
    assert errors[1] < errors[0] / 3


@pytest.mark.parametrize("combiner", ["mean", "sqrtn", "sum"])
def test_regression_loss_and_gradients_match_numpy(combiner):
    net = make_net("regression", combiner, (4,))
    y = [0.5, -1.0, 2.0]
    loss = regression_loss(net.predict(net.encode(*tensors(BAGS))), torch.tensor(y, dtype=torch.float64))
    p = np_params(net)
    assert float(loss.detach()) == pytest.approx(np_regression(p, BAGS, y, combiner, 1), rel=1e-10)
    expected = numeric_grads(lambda q: np_regression(q, BAGS, y, combiner, 1), p)
    for name, grad in torch_grads(net, loss).items():
        np.testing.assert_allclose(grad, expected[name], atol=1e-7, err_msg=name)


def test_empty_bag_pools_to_zero():
    net = make_net("regression", "mean", ())
    ids, offsets, weights = tensors([[(1, 1.0)], [], [(2, 2.0)]])
    pooled = net.pool(ids, offsets, weights)
    assert torch.equal(pooled[1], torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(pooled[2], net.embedding[2])


# --- encode_bags and BagCorpus ------------------------------------------------------------------


def test_encode_bags_drops_unknown_keys_and_keeps_rows_aligned():
    keys = ["서울", "m1", "m2", "m3"]
    corpus = encode_bags([["m1", "zzz", "m3"], [], None, ["zzz"], ["서울", None, "m2"]], keys)
    assert corpus.n_rows == 5 and corpus.n_entries == 4
    assert corpus.offsets.tolist() == [0, 2, 2, 2, 2, 4]
    assert corpus.ids.tolist() == [1, 3, 0, 2]
    assert corpus.weights is None and corpus.targets is None
    assert corpus.ids.dtype == np.int64 and corpus.offsets.dtype == np.int64


def test_encode_bags_weights_and_targets_from_arrow():
    seqs = pa.chunked_array([pa.array([["a", "x", "b"], None], pa.large_list(pa.large_string())),
                             pa.array([["b", "b"]], pa.large_list(pa.large_string()))])
    weights = pa.array([[2, 5, None], None, [1, 3]], pa.list_(pa.int64()))
    corpus = encode_bags(seqs, pa.array(["a", "b"]), weights, pa.array([1.5, 2, 3.25]))
    assert corpus.ids.tolist() == [0, 1, 1, 1]
    assert corpus.weights.tolist() == [2.0, 1.0, 1.0, 3.0]  # x's 5 dropped with it; NULL weight = 1
    assert corpus.targets.dtype == np.float32 and corpus.targets.tolist() == [1.5, 2.0, 3.25]
    assert corpus.counts(3).tolist() == [2.0, 5.0, 0.0]


def test_encode_bags_empty_input():
    corpus = encode_bags(pa.array([], pa.list_(pa.string())), ["a"])
    assert corpus.n_rows == 0 and corpus.n_entries == 0 and corpus.offsets.tolist() == [0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": [[1.0], [2.0, 3.0]]},
         "bag weights must have one value per key; row 0 has 2 keys and 1 weights (2 rows differ)"),
        ({"weights": [[1.0, -1.0], [1.0]]}, "bag weights must be finite and >= 0"),
        ({"targets": [1.0]}, "bag targets must have one value per row (2), got shape (1,)"),
        ({"targets": pa.array([1.0, None])}, "bag targets must not be NULL; 1 are (first at row 1)"),
        ({"targets": [1.0, float("nan")]}, "bag targets must be finite; 1 are not (first at row 1)"),
        ({"targets": pa.array(["1", "2"])}, "bag targets must be numeric, got string"),
    ],
)
def test_encode_bags_rejects_bad_weights_and_targets(kwargs, message):
    with pytest.raises(InputError) as err:
        encode_bags([["a", "b"], ["b"]], ["a", "b"], **kwargs)
    assert str(err.value) == message


def test_encode_bags_rejects_non_string_lists():
    with pytest.raises(InputError, match=r"bag sequences must be a list<string> array, got list<item: int64>"):
        encode_bags(pa.array([[1, 2]]), ["a"])


def test_take_and_concat():
    a = BagCorpus(np.array([0, 2, 3]), np.array([4, 1, 0]), np.array([1.0, 2.0, 3.0]), np.array([7.0, 8.0]))
    b = BagCorpus(np.array([0, 0, 1]), np.array([2]), None, np.array([9.0, 10.0]))
    both = BagCorpus.concat([a, b])
    assert both.offsets.tolist() == [0, 2, 3, 3, 4] and both.ids.tolist() == [4, 1, 0, 2]
    assert both.weights.tolist() == [1.0, 2.0, 3.0, 1.0] and both.targets.tolist() == [7, 8, 9, 10]
    picked = both.take([3, 0, 0, 2])
    assert picked.offsets.tolist() == [0, 1, 3, 5, 5] and picked.ids.tolist() == [2, 4, 1, 4, 1]
    assert picked.weights.tolist() == [1.0, 1.0, 2.0, 1.0, 2.0] and picked.targets.tolist() == [10, 7, 7, 9]
    with pytest.raises(InputError, match="some parts have targets and others do not"):
        BagCorpus.concat([a, BagCorpus(np.array([0, 1]), np.array([1]))])
    with pytest.raises(InputError, match=r"BagCorpus offsets must start at 0 and end at len\(ids\)=1"):
        BagCorpus(np.array([0, 2]), np.array([1]))


def test_holdout_split_picks_distinct_random_entries_per_row():
    offsets = np.array([0, 3, 6, 10])
    seen = set()
    for seed in range(40):
        held, real, kept, kept_offsets = holdout_split(offsets, 2, np.random.default_rng(seed))
        assert held.shape == (3, 2) and real.all() and kept_offsets.tolist() == [0, 1, 2, 4]
        rows = np.searchsorted(offsets, held, side="right") - 1
        assert (rows == np.arange(3)[:, None]).all() and (held[:, 0] != held[:, 1]).all()
        assert sorted(held.ravel().tolist() + kept.tolist()) == list(range(10))
        seen.add(tuple(held[2]))
    assert len(seen) > 6  # many different choices in the 4-item row
    first = holdout_split(offsets, 1, np.random.default_rng(3))
    again = holdout_split(offsets, 1, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


# --- training: determinism, checkpoints, sync, errors --------------------------------------------


def toy_corpus(rows: int = 300, vocab: int = 30, seed: int = 0, targets: bool = False) -> BagCorpus:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 8, rows)
    ids = rng.integers(0, vocab, lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    weights = rng.integers(1, 4, lengths.sum()).astype(np.float32) if targets else None
    y = np.add.reduceat(weights * (ids % 3), offsets[:-1]) + rng.normal(0, 0.1, rows) if targets else None
    return BagCorpus(offsets, ids, weights, y)


SOFTMAX = BagModelParams(dim=4, hidden=(5,), epochs=3, batch_size=32, sampled=7, dropout=0.2, device="cpu", seed=3)
REGRESSION = BagModelParams(objective="regression", dim=4, hidden=(5,), combiner="sqrtn", epochs=3, batch_size=32,
                            device="cpu", seed=3)


@pytest.mark.parametrize("params", [SOFTMAX, REGRESSION, BagModelParams(dim=3, epochs=2, device="cpu")])
def test_same_seed_same_vectors_and_resume_equals_uninterrupted(tmp_path, params):
    corpus = toy_corpus(targets=params.objective == "regression")
    counts = corpus.counts(30)
    full = train_bag_model(corpus, counts, params)
    again = train_bag_model(corpus, counts, params)
    assert np.array_equal(full.input_vectors, again.input_vectors)
    other = train_bag_model(corpus, counts, BagModelParams(**{**params.to_dict(), "seed": 4}))
    assert not np.allclose(full.input_vectors, other.input_vectors)

    short = BagModelParams(**{**params.to_dict(), "epochs": params.epochs - 1})
    train_bag_model(corpus, counts, short, checkpoint_dir=tmp_path)
    saved = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert saved["format"] == CHECKPOINT_FORMAT and saved["epoch"] == params.epochs - 1
    resumed = train_bag_model(corpus, counts, params, checkpoint_dir=tmp_path, resume=True)
    assert np.array_equal(full.input_vectors, resumed.input_vectors)
    if full.output_vectors is not None:
        assert np.array_equal(full.output_vectors, resumed.output_vectors)
    assert resumed.epoch_losses == full.epoch_losses
    assert resumed.metrics == full.metrics


def test_resume_with_changed_params_names_the_key(tmp_path):
    corpus = toy_corpus()
    train_bag_model(corpus, None, BagModelParams(dim=3, epochs=1, device="cpu"), checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        train_bag_model(corpus, None, BagModelParams(dim=4, epochs=2, device="cpu"), checkpoint_dir=tmp_path,
                        resume=True)
    assert str(err.value).startswith(f"config key 'dim' is 4 but checkpoint {tmp_path / CHECKPOINT_NAME} was "
                                     "trained with 3")
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        train_bag_model(corpus, None, BagModelParams(dim=3, epochs=2, device="cpu"), checkpoint_dir=tmp_path,
                        resume=True)


def test_progress_and_replica_sync_hooks():
    corpus = toy_corpus(rows=100)
    reports: list[TrainProgress] = []

    class Recorder:
        def __init__(self):
            self.calls = []

        def due(self, progress):
            return progress >= len(self.calls) * 0.5 + 0.5

        def sync(self, state, progress):
            assert isinstance(state, BagTrainingState)
            # no output bias: the model's score is the two tables' dot product
            assert [name for name, _ in state.model.named_parameters()] == ["embedding", "out_weight"]
            self.calls.append(progress)

        def finish(self, state):
            self.calls.append("finish")

    sync = Recorder()
    params = BagModelParams(dim=3, epochs=2, batch_size=25, device="cpu")
    result = train_bag_model(corpus, None, params, progress=reports.append, log_interval=0.0, replica_sync=sync)
    ends = [r for r in reports if r.epoch_end]
    eligible = int((corpus.lengths() > 1).sum())
    assert [r.words_done for r in ends] == [eligible, 2 * eligible]
    assert ends[-1].total_words == 2 * eligible and ends[-1].fraction_done == 1.0
    assert sync.calls[-2:] == [2.0, "finish"] and 1.0 in sync.calls
    assert any(isinstance(c, float) and 0.5 <= c < 1.0 for c in sync.calls)
    assert len(result.epoch_losses) == 2 and result.examples_per_second > 0


def test_replica_group_mean_mode_averages_the_documented_state():
    """A real one-process gloo group: averaging over one replica must leave training unchanged."""
    import torch.distributed as dist

    from embedpipe.methods.barrier import ReplicaGroup, free_port

    corpus = toy_corpus()
    params = BagModelParams(dim=3, hidden=(4,), epochs=2, batch_size=32, sampled=5, device="cpu")
    alone = train_bag_model(corpus, None, params)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    group = ReplicaGroup(3, tensors_of=lambda s: list(s.model.parameters()), mode="mean")
    try:
        synced = train_bag_model(corpus, None, params, replica_sync=group)
    finally:
        group.close()
    assert group.rounds == 6
    assert np.array_equal(alone.input_vectors, synced.input_vectors)


def test_target_scale_fixes_the_standardisation():
    from embedpipe.torchtrain.bag_model import split_rows

    corpus = toy_corpus(targets=True)
    params = BagModelParams(objective="regression", dim=3, epochs=2, device="cpu")
    default = train_bag_model(corpus, None, params)
    rows, _ = split_rows(corpus.n_rows, params.validation_fraction, params.seed)
    y = corpus.targets[rows].astype(np.float64)
    same = train_bag_model(corpus, None, params, target_scale=(y.mean(), y.std()))
    assert np.array_equal(default.input_vectors, same.input_vectors) and default.metrics == same.metrics
    shifted = train_bag_model(corpus, None, params, target_scale=(0.0, 1.0))
    assert not np.allclose(default.input_vectors, shifted.input_vectors)
    with pytest.raises(InputError, match=r"target_scale must be a finite mean and a positive std, got \(1.0, 0.0\)"):
        train_bag_model(corpus, None, params, target_scale=(1.0, 0.0))


def test_divergence_names_the_key():
    corpus = toy_corpus(targets=True)
    huge = BagCorpus(corpus.offsets, corpus.ids, corpus.weights * np.float32(1e37), corpus.targets)
    params = BagModelParams(objective="regression", dim=4, combiner="sum", epochs=1, device="cpu")
    with pytest.raises(TrainingDivergedError) as err:
        train_bag_model(huge, None, params)
    message = str(err.value)
    assert message.startswith("regression training diverged: the loss became ")
    assert "lower the initial learning rate (now 0.01)" in message and "\n" not in message
    assert err.value.param == "lr" and "config key" not in message  # the caller names its own key


def test_input_errors():
    with pytest.raises(EmptyResultError, match="the bag corpus has no entries"):
        train_bag_model(BagCorpus(np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64)), None)
    with pytest.raises(EmptyResultError, match=r"no row has 2 or more items, so none can be trained on"):
        train_bag_model(BagCorpus(np.array([0, 1, 2]), np.array([0, 1])), None, BagModelParams(holdout=2))
    with pytest.raises(InputError, match="objective 'regression' needs a target per row"):
        train_bag_model(toy_corpus(), None, BagModelParams(objective="regression"))
    with pytest.raises(InputError, match=r"uses id 29 but counts has only 5 entries"):
        train_bag_model(toy_corpus(), np.ones(5), BagModelParams())
    with pytest.raises(ConfigError, match="resume needs a checkpoint directory"):
        train_bag_model(toy_corpus(), None, BagModelParams(), resume=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "config key 'dim' must be >= 1, got 0"),
        ({"objective": "ranking"}, "config key 'objective' must be one of softmax, regression, got 'ranking'"),
        ({"combiner": "max"}, "config key 'combiner' must be one of mean, sqrtn, sum, got 'max'"),
        ({"hidden": (8, 0)}, "config key 'hidden' must be a list of integers >= 1, got (8, 0)"),
        ({"lr": 0.0}, "config key 'lr' must be > 0.0, got 0.0"),
        ({"sampled": -1}, "config key 'sampled' must be >= 0, got -1"),
        ({"holdout": 0}, "config key 'holdout' must be >= 1, got 0"),
        ({"dropout": 0.95}, "config key 'dropout' must be <= 0.9, got 0.95"),
        ({"proposal_power": 1.5}, "config key 'proposal_power' must be <= 1.0, got 1.5"),
        ({"validation_fraction": -0.1}, "config key 'validation_fraction' must be >= 0.0, got -0.1"),
        ({"threads": 0}, "config key 'threads' must be >= 1, got 0"),
        ({"epochs": True}, "config key 'epochs' must be int, got True"),
        ({"device": "tpu"}, "config key 'device' must be one of auto, cpu, cuda, got 'tpu'"),
        ({"lr": float("nan")}, "config key 'lr' must be a finite number, got nan"),
        ({"deterministic": True}, None),  # not a bag-model setting
        ({"output_bias": True}, None),  # removed: the model has no output bias
    ],
)
def test_bad_params_name_the_key(kwargs, message):
    if message is None:
        with pytest.raises(TypeError, match=next(iter(kwargs))):
            BagModelParams(**kwargs)
        return
    with pytest.raises(ConfigError) as err:
        BagModelParams(**kwargs)
    assert str(err.value) == message


def test_hidden_accepts_a_list_and_round_trips():
    params = BagModelParams(hidden=[16, 8])
    assert params.hidden == (16, 8) and params.output_dim == 8
    assert BagModelParams(**params.to_dict()) == params


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    corpus = toy_corpus()
    cpu = train_bag_model(corpus, None, BagModelParams(dim=4, epochs=2, sampled=5, device="cpu"))
    gpu = train_bag_model(corpus, None, BagModelParams(dim=4, epochs=2, sampled=5, device="cuda"))
    np.testing.assert_allclose(cpu.input_vectors, gpu.input_vectors, atol=1e-4)
