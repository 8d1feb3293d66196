"""Vectorised skip-gram windows and noise words, as tensors on the training device.

One step trains a batch of *windows*: a center word, the context words around it, and noise
words shared by every pair of that window (the HogBatch / BlazingText ``batch_skipgram`` layout).
Sharing noise within a window turns a window's work into small dense matrix products instead of
one scatter per (pair, noise word), which is what makes the step fast on CPU and GPU alike.

Everything is built with tensor operations — subsampling, word2vec's randomly shrunk window,
sentence boundaries, noise draws — and every random number comes from an explicit
:class:`torch.Generator`, so the same seed gives the same batches on a given device.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from embedpipe.torchtrain.corpus import IdCorpus

#: Raw tokens per chunk that is subsampled and windowed at once; fixed so batches do not depend on
#: memory settings (chunks end at sentence boundaries, so windows never cross a chunk).
CHUNK_TOKENS = 1 << 20


@dataclass
class WindowBatch:
    """A batch of ``B`` windows of one shrunk width ``b``: ``contexts`` and ``mask`` are ``B x 2b``.

    ``contexts[i, j]`` is valid where ``mask[i, j] == 1`` (columns past a sentence end are padding:
    they hold a real id, so they can be gathered, and get zero weight). Columns are ordered by
    distance: -1, +1, -2, +2, ... ``noise_targets`` (``B x negative``) replace the center word of
    every pair in the window (the batched step); for the pairwise kernels, ``noise_seed`` seeds their
    own per-pair draws instead. ``words_done`` is the
    epoch's raw-token position reached by the batch, which drives the learning-rate decay.
    """

    centers: torch.Tensor
    contexts: torch.Tensor
    mask: torch.Tensor
    noise_targets: torch.Tensor | None = None
    words_done: int = 0
    noise_seed: int | None = None  # instead of noise tensors: the seed of the step's own per-pair draws

    @property
    def size(self) -> int:
        return int(self.centers.shape[0])

    def split(self, parts: int, align: int = 64) -> list[WindowBatch]:
        """Consecutive sub-batches (views), e.g. one per worker thread.

        Cuts fall on multiples of ``align`` windows so that every part starts on the same SIMD
        lane as in the whole batch: vectorised kernels then round each element exactly as they do
        for the unsplit batch, which keeps results independent of the number of parts.
        """
        units = -(-self.size // align)
        cuts = [min(self.size, align * (units * i // parts)) for i in range(1, parts)]

        def pieces(t: torch.Tensor | None) -> list[torch.Tensor | None]:
            return [None] * parts if t is None else list(torch.tensor_split(t, cuts))

        columns = (self.centers, self.contexts, self.mask, self.noise_targets)
        return [
            WindowBatch(c, x, m, nt, words_done=self.words_done, noise_seed=self.noise_seed)  # type: ignore[arg-type]
            for c, x, m, nt in zip(*(pieces(t) for t in columns), strict=True)
        ]


def window_offsets(window: int) -> np.ndarray:
    """Context offsets ordered by distance: -1, +1, -2, +2, ..., -window, +window."""
    distances = np.repeat(np.arange(1, window + 1), 2)
    signs = np.tile([-1, 1], window)
    return (distances * signs).astype(np.int64)


class NoiseSampler:
    """Draws ids from a discrete distribution in O(1) per draw with Walker's alias method.

    Two gathers and a comparison per draw, on the device, from the given generator — several times
    faster than a binary search over the CDF, and exact (no 10^8-entry table as in word2vec.c).
    Words with zero probability are never drawn.
    """

    def __init__(self, probabilities: np.ndarray, device: torch.device | str = "cpu"):
        accept, alias = alias_table(probabilities)
        self.accept = torch.as_tensor(accept, dtype=torch.float64, device=device)
        self.alias = torch.as_tensor(alias, dtype=torch.int64, device=device)
        self.vocab_size = len(accept)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        device = self.accept.device
        slot = torch.randint(0, self.vocab_size, shape, generator=generator, device=device)
        uniform = torch.rand(shape, generator=generator, dtype=torch.float64, device=device)
        return torch.where(uniform < self.accept[slot], slot, self.alias[slot])


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table: draw slot ``j`` uniformly, keep it with ``accept[j]``, else take ``alias[j]``.

    The construction is sequential (one Python step per word, about a second per million words)
    and runs once per training run.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    n = len(p)
    scaled = p * (n / p.sum())
    accept = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = np.flatnonzero(scaled < 1.0).tolist()
    large = np.flatnonzero(scaled >= 1.0).tolist()
    work = scaled.tolist()
    while small and large:
        s, g = small.pop(), large[-1]
        accept[s] = work[s]
        alias[s] = g
        work[g] -= 1.0 - work[s]
        if work[g] < 1.0:
            small.append(large.pop())
    # leftovers are 1 up to rounding; a zero-probability slot must never draw itself
    for j in small + large:
        if p[j] > 0:
            accept[j] = 1.0
        else:
            accept[j], alias[j] = 0.0, int(np.argmax(p))
    return accept, alias


def sentence_chunks(offsets: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> list[tuple[int, int]]:
    """Split the corpus into ``[start, end)`` token ranges of whole sentences, about chunk_tokens each."""
    total = int(offsets[-1])
    if total == 0:
        return []
    # the first sentence boundary at or after each multiple of chunk_tokens
    marks = np.arange(chunk_tokens, total, chunk_tokens)
    cuts = offsets[np.searchsorted(offsets, marks, side="left")]
    bounds = np.unique(np.concatenate([[0], cuts, [total]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


class SkipGramBatcher:
    """Turns an :class:`IdCorpus` into :class:`WindowBatch` es, one epoch at a time.

    The corpus is copied to the device once; each epoch subsamples it (word2vec's keep
    probabilities), draws a shrunk window per center (uniform in 1..window, as word2vec.c) and
    ``negative`` noise words per window — or, with ``step_draws_noise``, no noise words but a seed
    per batch: the pairwise kernels (:mod:`embedpipe.torchtrain.pairwise_cpu`,
    :mod:`embedpipe.torchtrain.pairwise_cuda`) draw ``negative`` noise words per pair themselves, as
    word2vec does.

    Windows are grouped by their shrunk width: a run of ``batch_size * window`` consecutive kept
    centers is cut into one batch per width ``b`` (``2b`` context columns), so a batch has about
    ``batch_size`` windows and almost no padding — a window of width 1 does not pay for 10 columns.
    Only sentence ends still leave padded (masked) columns. With ``shrink_window=False`` (item2vec)
    every window has the full width and a run is one batch of ``batch_size`` windows.

    The pairwise kernel gets the same grouped batches although it could take windows in corpus
    order (masked to their widths): measured, corpus order was worse (Wikipedia excerpt, 8 seeds:
    WS353 0.226 against 0.231; demo corpus, 3 seeds: planted ρ 0.585 against 0.588).
    """

    def __init__(
        self,
        corpus: IdCorpus,
        keep_probabilities: np.ndarray,
        noise: NoiseSampler,
        *,
        window: int,
        negative: int,
        batch_size: int,
        device: torch.device | str = "cpu",
        chunk_tokens: int = CHUNK_TOKENS,
        shrink_window: bool = True,
        step_draws_noise: bool = False,
    ):
        self.device = torch.device(device)
        self.tokens = torch.as_tensor(corpus.tokens, dtype=torch.int64, device=self.device)
        self.sentence_ids = torch.as_tensor(corpus.sentence_ids(), device=self.device)
        self.keep = torch.as_tensor(np.asarray(keep_probabilities, dtype=np.float32), device=self.device)
        self.subsample = bool(np.any(np.asarray(keep_probabilities) < 1.0))
        self.noise = noise
        self.window = window
        self.negative = negative
        self.batch_size = batch_size
        self.shrink_window = shrink_window
        self.step_draws_noise = step_draws_noise
        self.chunks = sentence_chunks(corpus.offsets, chunk_tokens)
        self.offsets = torch.as_tensor(window_offsets(window), device=self.device)
        self.n_tokens = corpus.n_tokens

    def epoch(self, generator: torch.Generator) -> Generator[WindowBatch, None, None]:
        """Yield the batches of one epoch; the generator alone decides every random choice."""
        # shrunk windows: a run is cut into one batch per width, about batch_size windows each
        run = self.batch_size * self.window if self.shrink_window else self.batch_size
        for start, end in self.chunks:
            tokens = self.tokens[start:end]
            sentences = self.sentence_ids[start:end]
            if self.subsample:
                draws = torch.rand(tokens.shape, generator=generator, device=self.device)
                kept = torch.nonzero(draws < self.keep[tokens]).squeeze(1)
                tokens, sentences = tokens[kept], sentences[kept]
            n_kept = int(tokens.shape[0])
            if n_kept == 0:
                continue
            # each kept token's sentence as a [lo, hi) range of kept positions (sentence ids are sorted)
            lo = torch.searchsorted(sentences, sentences, right=False)
            hi = torch.searchsorted(sentences, sentences, right=True)
            for a in range(0, n_kept, run):
                b = min(a + run, n_kept)
                words_done = start + round((end - start) * b / n_kept)
                yield from self._windows(tokens, lo, hi, a, b, generator, words_done)

    def _windows(
        self,
        tokens: torch.Tensor,
        lo: torch.Tensor,
        hi: torch.Tensor,
        a: int,
        b: int,
        generator: torch.Generator,
        words_done: int,
    ) -> Iterator[WindowBatch]:
        """The batches of centers ``a..b-1`` (kept positions), one per shrunk window width."""
        n = b - a
        if self.shrink_window:
            shrink = torch.randint(1, self.window + 1, (n,), generator=generator, device=self.device)
        else:
            shrink = torch.full((n,), self.window, dtype=torch.int64, device=self.device)
        noise_targets = None
        seeds = [None] * (self.window + 1)
        if self.step_draws_noise:  # one seed per batch (width) for the step's own noise draws
            seeds = torch.randint(0, 1 << 32, (self.window + 1,), generator=generator, device=self.device).tolist()
        else:
            noise_targets = self.noise.sample((n, self.negative), generator)
        order = torch.argsort(shrink, stable=True)
        sizes = torch.bincount(shrink, minlength=self.window + 1).tolist()
        first = 0
        for width in range(1, self.window + 1):
            members = order[first : first + sizes[width]]
            first += sizes[width]
            if members.numel() == 0:
                continue
            center_pos = members + a
            pos = center_pos[:, None] + self.offsets[None, : 2 * width]
            valid = (pos >= lo[center_pos, None]) & (pos < hi[center_pos, None])
            pos.clamp_(0, tokens.shape[0] - 1)
            yield WindowBatch(
                centers=tokens[center_pos],
                contexts=tokens[pos],
                mask=valid.to(torch.float32),
                noise_targets=None if noise_targets is None else noise_targets[members],
                words_done=words_done,
                noise_seed=seeds[width],
            )
