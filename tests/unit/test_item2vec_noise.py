"""item2vec's noise exponent (``item2vec.noise_power``, issue 21): declared once, passed to the core, used."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.errors import ConfigError
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.item2vec import item2vec_params
from embedpipe.methods.sgns import sgns_params

torch = pytest.importorskip("torch")

from embedpipe.torchtrain import IdCorpus, SGNSParams  # noqa: E402
from embedpipe.torchtrain.sgns_train import train_sgns  # noqa: E402


def test_item2vec_passes_its_noise_power_and_sgns_keeps_word2vec_s():
    default = item2vec_params(TrainConfig(input="i", output="o", method="item2vec"), threads=1, interactions=1000)
    assert default["noise_power"] == 0.5
    uniform = TrainConfig(input="i", output="o", method="item2vec", settings={"noise_power": 0.0})
    assert item2vec_params(uniform, threads=1, interactions=1000)["noise_power"] == 0.0
    assert SGNSParams(**default).noise_power == 0.5
    assert sgns_params(TrainConfig(input="i", output="o", method="sgns"), threads=1)["noise_power"] == 0.75


@pytest.mark.parametrize(("value", "message"), [
    (-0.5, "config key 'item2vec.noise_power' must be >= 0.0, got -0.5"),
    (1.5, "config key 'item2vec.noise_power' must be <= 1.0, got 1.5"),
])
def test_noise_power_out_of_range_names_the_key(value, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(input="i", output="o", method="item2vec", settings={"noise_power": value})
    assert str(err.value) == message


def test_noise_power_changes_which_items_are_negatives():
    """A skewed vocabulary: the exponent moves the noise, so the trained vectors differ; 0.75 is the default."""
    rng = np.random.default_rng(0)
    tokens = rng.zipf(1.5, 3000) % 40
    corpus = IdCorpus(tokens.astype(np.int64), np.arange(0, 3001, 30))
    counts = np.bincount(tokens, minlength=40)
    base = {"dim": 4, "window": 3, "sample": 0.0, "epochs": 1, "seed": 1, "device": "cpu", "threads": 1}
    # the batched step (no JIT compile): the noise sampler it draws from is the one every kernel uses
    word2vec = train_sgns(corpus, counts, SGNSParams(**base), _kernel="batched").output_vectors
    same = train_sgns(corpus, counts, SGNSParams(**base, noise_power=0.75), _kernel="batched").output_vectors
    uniform = train_sgns(corpus, counts, SGNSParams(**base, noise_power=0.0), _kernel="batched").output_vectors
    np.testing.assert_array_equal(word2vec, same)
    assert not np.allclose(word2vec, uniform)
