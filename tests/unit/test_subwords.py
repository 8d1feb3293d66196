"""fastText's n-gram hashing (embedpipe.subwords) and the subword CPU kernel.

The expected buckets were computed with gensim 4's ``gensim.models.fasttext.ft_ngram_hashes`` (which
reproduces fastText's ``computeSubwords``, sign-extension quirk included); the gensim cross-check
below reruns that comparison where gensim is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe import subwords
from embedpipe.errors import ConfigError

#: (data, fastText hash) from gensim.models.fasttext_inner.ft_hash_bytes
KNOWN_HASHES = [(b"<ca", 1066916747), ("고양".encode(), 962078563), (b"<cat>", 3961428137)]
#: ft_ngram_hashes(word, minn, maxn, buckets) from gensim, in fastText's order
KNOWN_BUCKETS = {
    ("cat", 3, 6, 2_000_000): [916747, 1988973, 1428137, 289031, 1127995, 351106],
}
WORDS = ["cat", "고양이가", "naïve", "x", "2026년", "ab", "고양이를", "강조했습니다", "é"]


@pytest.mark.parametrize(("data", "expected"), KNOWN_HASHES)
def test_hash_matches_fasttext(data, expected):
    assert subwords.ft_hash(data) == expected


def test_buckets_match_fasttext_in_python_and_compiled():
    for (word, minn, maxn, buckets), expected in KNOWN_BUCKETS.items():
        assert subwords.ngram_buckets(word, minn, maxn, buckets).tolist() == expected
        offsets, found = subwords.word_buckets([word], minn, maxn, buckets)
        assert offsets.tolist() == [0, len(expected)] and found.tolist() == expected


@pytest.mark.parametrize(("minn", "maxn", "buckets"), [(3, 6, 2_000_000), (1, 4, 1000), (2, 2, 7)])
def test_vocabulary_pass_equals_per_word(minn, maxn, buckets):
    offsets, found = subwords.word_buckets(WORDS, minn, maxn, buckets)
    for i, word in enumerate(WORDS):
        assert found[offsets[i]:offsets[i + 1]].tolist() == subwords.ngram_buckets(word, minn, maxn, buckets).tolist()


def test_matches_gensim_where_installed():
    fasttext = pytest.importorskip("gensim.models.fasttext")
    for word in WORDS:
        for minn, maxn, buckets in ((3, 6, 2_000_000), (1, 4, 100_000)):
            expected = [int(h) for h in fasttext.ft_ngram_hashes(word, minn, maxn, buckets)]
            assert subwords.ngram_buckets(word, minn, maxn, buckets).tolist() == expected, word


def test_char_ngrams_are_fasttexts():
    assert subwords.char_ngrams("cat", 3, 4) == ["<ca", "<cat", "cat", "cat>", "at>"]
    assert subwords.char_ngrams("ab", 1, 2) == ["<a", "a", "ab", "b", "b>"]  # not the 1-grams '<' and '>'


def test_index_rows_are_own_row_then_compact_buckets():
    index = subwords.subword_index(["cat", "cart"], 3, 3, 1_000_000)
    assert index.vocab_size == 2
    cat = index.rows[index.offsets[0]:index.offsets[1]]
    cart = index.rows[index.offsets[1]:index.offsets[2]]
    assert cat[0] == 0 and cart[0] == 1
    # the n-gram rows point at the sorted distinct buckets the vocabulary uses
    assert index.buckets[cat[1:] - 2].tolist() == subwords.ngram_buckets("cat", 3, 3, 1_000_000).tolist()
    assert index.buckets[cart[1:] - 2].tolist() == subwords.ngram_buckets("cart", 3, 3, 1_000_000).tolist()
    assert index.n_rows == 2 + len(set(index.buckets.tolist())) and np.all(np.diff(index.buckets) > 0)


def test_compose_is_the_mean_of_the_rows():
    matrix = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = subwords.compose(matrix, np.array([0, 2, 5, 1]), np.array([0, 3, 3, 4]))
    np.testing.assert_allclose(out, [matrix[[0, 2, 5]].mean(0), [0, 0], matrix[1]])


@pytest.mark.parametrize(("minn", "maxn", "buckets", "message"), [
    (4, 3, 10, "config key 'minn' must be <= maxn (3), got 4"),
    (3, 11, 10, "config key 'maxn' must be between 1 and 10, got 11"),
    (0, 3, 10, "config key 'minn' must be between 1 and 10, got 0"),
    (3, 6, 0, "config key 'buckets' must be >= 1, got 0"),
])
def test_bad_ngram_settings(minn, maxn, buckets, message):
    with pytest.raises(ConfigError) as error:
        subwords.word_buckets(["cat"], minn, maxn, buckets)
    assert str(error.value) == message


def test_subword_kernel_with_only_own_rows_is_the_pairwise_kernel_on_reversed_pairs():
    """A word made of its own row alone trains as SGNS's pairwise kernel trains the same pairs reversed
    (fastText's input is the center, word2vec's the context), one pair per window, same noise stream."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("numba")
    from embedpipe.torchtrain import encode_sentences
    from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher, WindowBatch
    from embedpipe.torchtrain.corpus import keep_probabilities, noise_distribution
    from embedpipe.torchtrain.pairwise_cpu import PairwiseStep
    from embedpipe.torchtrain.subword_cpu import SubwordStep

    rng = np.random.default_rng(1)
    vocab = {f"w{i}": i for i in range(30)}
    corpus = encode_sentences([[f"w{j}" for j in rng.integers(0, 30, 12)] for _ in range(40)], vocab)
    counts = corpus.counts(30)
    noise = NoiseSampler(noise_distribution(counts), torch.device("cpu"))
    batcher = SkipGramBatcher(corpus, keep_probabilities(counts, 0.0), noise, window=3, negative=4, batch_size=64,
                              device=torch.device("cpu"), step_draws_noise=True)
    pairwise = PairwiseStep(noise.accept, noise.alias, 4)
    subword = SubwordStep(noise.accept, noise.alias, 4, np.arange(31), np.arange(30))
    start = torch.rand(30, 8, generator=torch.Generator().manual_seed(0)) - 0.5
    matrices = [(start.clone(), torch.rand(30, 8, generator=torch.Generator().manual_seed(1))) for _ in range(2)]
    for batch in batcher.epoch(torch.Generator().manual_seed(2)):
        valid = batch.mask.numpy() != 0
        assert (valid.sum(axis=1) > 1).any()  # windows of several pairs: the running mean is exercised
        i, j = np.nonzero(valid)  # row-major: the subword kernel's pair order
        reversed_pairs = WindowBatch(batch.contexts[i, j], batch.centers[i][:, None], batch.mask[i, j][:, None],
                                     noise_seed=batch.noise_seed)
        loss_a = pairwise(*matrices[0], reversed_pairs, 0.05)
        loss_b = subword(*matrices[1], batch, 0.05)
        assert float(loss_a) == pytest.approx(float(loss_b), rel=1e-6)
    np.testing.assert_allclose(matrices[0][0].numpy(), matrices[1][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(matrices[0][1].numpy(), matrices[1][1].numpy(), rtol=1e-5, atol=1e-6)


def test_fasttext_trainer_repeats_for_any_thread_count_and_moves_ngram_rows():
    pytest.importorskip("torch")
    pytest.importorskip("numba")
    from embedpipe.torchtrain import encode_sentences, vocab_keys
    from embedpipe.torchtrain.subword_train import FastTextParams, initial_state, train_fasttext

    rng = np.random.default_rng(0)
    words = [f"{stem}{end}" for stem in ("walk", "talk", "jump", "play") for end in ("", "ing", "ed", "s")]
    vocab = {w: i for i, w in enumerate(words)}
    corpus = encode_sentences([[words[j] for j in rng.integers(0, len(words), 10)] for _ in range(60)], vocab)
    index = subwords.subword_index(vocab_keys(vocab), 3, 5, 5000)
    runs = [train_fasttext(corpus, None, FastTextParams(dim=8, epochs=2, threads=t, device="cpu", minn=3, maxn=5,
                                                        buckets=5000), index) for t in (1, 2, 1)]
    np.testing.assert_array_equal(runs[0].input_vectors, runs[1].input_vectors)
    np.testing.assert_array_equal(runs[0].subword_vectors, runs[2].subword_vectors)
    assert runs[0].input_vectors.shape == (16, 8) and runs[0].subword_vectors.shape == (len(index.buckets), 8)
    start = initial_state(index, FastTextParams(dim=8, minn=3, maxn=5, buckets=5000)).w_in.numpy()
    assert not np.allclose(start[16:], runs[0].subword_vectors)  # the n-gram rows trained


def test_subword_window_against_fasttexts_per_pair_loop():
    """One window by hand, as fastText's skip-gram runs it: per pair the input is the mean of the center's
    rows and each row gets the whole input gradient; the kernel's running mean gives the same vectors."""
    pytest.importorskip("numba")
    from embedpipe.torchtrain import subword_cpu

    rng = np.random.default_rng(3)
    w_in = rng.uniform(-0.5, 0.5, (6, 4)).astype(np.float32)
    w_out = rng.uniform(-0.5, 0.5, (3, 4)).astype(np.float32)
    offsets, rows = np.array([0, 3, 4, 5]), np.array([0, 3, 4, 1, 2])  # word 0 = rows 0, 3, 4
    accept, alias = np.zeros(3), np.full(3, 2)  # every noise draw is word 2
    lr = 0.1
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    expected_in, expected_out = w_in.astype(np.float64), w_out.astype(np.float64)
    for positive in (1, 1):  # center 0, contexts 1 and 1 (the second pair's mean includes the first's update)
        hidden = expected_in[[0, 3, 4]].mean(axis=0)
        g_pos = lr * (1 - sigmoid(hidden @ expected_out[positive]))
        g_neg = -lr * sigmoid(hidden @ expected_out[2])
        update = g_pos * expected_out[positive] + g_neg * expected_out[2]
        expected_out[positive] += g_pos * hidden
        expected_out[2] += g_neg * hidden
        expected_in[[0, 3, 4]] += update
    subword_cpu._train_subword_windows(w_in, w_out, offsets, rows, np.array([0]), np.array([[1, 2, 1]]),
                                       np.array([[1.0, 0.0, 1.0]], dtype=np.float32), accept, alias, 1, lr, 7)
    np.testing.assert_allclose(w_in, expected_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_out, expected_out, rtol=1e-5, atol=1e-6)


def test_fasttext_params_refuse_one_matrix():
    """fastText's input side is several rows per word and its output one row: ``tied`` cannot apply."""
    from embedpipe.torchtrain.subword_train import FastTextParams

    with pytest.raises(ConfigError, match="config key 'tied' is not supported by the subword trainer"):
        FastTextParams(tied=True)
