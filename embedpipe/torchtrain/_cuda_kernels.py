"""The numba-cuda kernels of :mod:`embedpipe.torchtrain.pairwise_cuda` (see there for what they do and why).

Two kernels, one pair arithmetic: SGNS's :func:`train_windows` (input: one row, the context) and
fastText's :func:`train_subword_windows` (input: the mean of the center's own and n-gram rows, gathered
once per window and scattered back once, as :mod:`embedpipe.torchtrain.subword_cpu` does on CPU) both
score and update the output side of a pair with :func:`sgd_terms`, the twin of
``pairwise_cpu._sgd_terms_py``.

A module of its own, imported only when the kernel is first launched, because numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, the tests' way to run it without a GPU) finds ``cuda``
only as a module global of the kernel's code.

Rows are updated with atomic adds, not read-modify-write: thousands of warps in flight update the
frequent noise words' output rows many times within one memory round trip, and plain stores would
drop most of those updates (in the CPU model of :mod:`embedpipe.torchtrain.pairwise_cuda`, keeping only
the last of the concurrent updates of a row cut planted similarity from 0.623 to 0.473). Added, they
are the model's summed updates. It imports only :mod:`embedpipe.torchtrain.kernel_common`, so the
dependencies run one way: ``pairwise_cuda`` -> ``_cuda_kernels`` -> ``kernel_common``.

A block is one warp. Its lanes add up a score through shared memory between two
``syncthreads`` (the simulator has no warp shuffles); with one warp per block that barrier is a
warp barrier, and every lane reaches it because all lanes of a warp take the same branches (they
draw the same noise words and read the same summed scores).
"""

import math

from numba import cuda, float32, int64, uint64

from embedpipe.torchtrain.kernel_common import MAX_EXP, MAX_TERMS, PER_LANE, WARP, draw_py

draw = cuda.jit(device=True)(draw_py)


@cuda.jit(device=True)
def sgd_terms(w_out, inputs, positive, weight, lr, accept, alias, negative, state, lane, outputs, scores, partials,
              update):
    """One pair's output side, as ``pairwise_cpu._sgd_terms_py``: the input vector (this lane's coordinates
    lane, lane + 32, ... in ``inputs``) against ``w_out[positive]`` and ``negative`` noise words; the output
    rows move (atomic adds), ``update`` receives the lane's coordinates of the input's summed gradient step
    (not applied: SGNS adds it to one row, fastText to each of a word's rows). Returns the weighted loss.

    Every lane sums the 32 partial scores in the same order, so all lanes hold the same score.
    """
    dim = w_out.shape[1]
    terms = 1
    outputs[0] = positive
    for _ in range(negative):
        out = draw(accept, alias, state)  # every lane draws the same words from the same state
        if out != positive:
            outputs[terms] = out
            terms += 1
    k = 0
    for _x in range(lane, dim, WARP):
        update[k] = 0.0
        k += 1
    for t in range(terms):
        out = outputs[t]
        partial = float32(0.0)
        k = 0
        for x in range(lane, dim, WARP):
            partial += inputs[k] * w_out[out, x]
            k += 1
        partials[t, lane] = partial
    cuda.syncthreads()
    for t in range(terms):
        score = float32(0.0)
        for other in range(WARP):
            score += partials[t, other]
        scores[t] = score
    cuda.syncthreads()  # the partials are read before the next pair writes them
    linear = 0.0
    product = 1.0
    step = float32(weight * lr)
    for t in range(terms):
        z = scores[t] if t == 0 else -scores[t]
        tail = math.exp(-abs(z))
        linear += max(-z, float32(0.0))
        product *= 1.0 + tail
        if abs(z) >= MAX_EXP:
            continue  # saturated: gensim skips the term
        miss = tail / (float32(1.0) + tail) if z >= 0.0 else float32(1.0) / (float32(1.0) + tail)
        gradient = step * miss if t == 0 else -step * miss  # lr * weight * (label - sigmoid(score))
        out = outputs[t]
        k = 0
        for x in range(lane, dim, WARP):
            update[k] += gradient * w_out[out, x]
            cuda.atomic.add(w_out, (out, x), gradient * inputs[k])
            k += 1
    return weight * (linear + math.log(product))


@cuda.jit(device=True)
def train_pair(w_in, w_out, row, positive, weight, lr, accept, alias, negative, state, lane,
               outputs, scores, partials, inputs, update):
    """One pair, as ``pairwise_cpu._train_pair_py``: ``w_in[row]`` read once, :func:`sgd_terms`, then the
    row moves by the summed update."""
    dim = w_in.shape[1]
    k = 0
    for x in range(lane, dim, WARP):
        inputs[k] = w_in[row, x]
        k += 1
    loss = sgd_terms(w_out, inputs, positive, weight, lr, accept, alias, negative, state, lane, outputs, scores,
                     partials, update)
    k = 0
    for x in range(lane, dim, WARP):
        cuda.atomic.add(w_in, (row, x), update[k])
        k += 1
    return loss


@cuda.jit(device=True)
def train_subword_center(w_in, w_out, offsets, rows, window, centers, contexts, mask, lr, accept, alias, negative,
                         state, lane, outputs, scores, partials, hidden, update, summed):
    """One fastText window, as ``subword_cpu._train_subword_center_py``: the mean of the center's rows
    (``rows[offsets[w]:offsets[w + 1]]``) gathered once into ``hidden``, trained against each context by
    :func:`sgd_terms` and moved by each pair's update; their sum goes to every one of the rows at the end."""
    dim = w_in.shape[1]
    word = centers[window]
    start, end = offsets[word], offsets[word + 1]
    k = 0
    for _x in range(lane, dim, WARP):
        hidden[k] = 0.0
        summed[k] = 0.0
        k += 1
    for r in range(start, end):
        row = rows[r]
        k = 0
        for x in range(lane, dim, WARP):
            hidden[k] += w_in[row, x]
            k += 1
    scale = float32(1.0 / (end - start))
    k = 0
    for _x in range(lane, dim, WARP):
        hidden[k] *= scale
        k += 1
    loss = 0.0
    for j in range(contexts.shape[1]):
        weight = mask[window, j]
        if weight == 0.0:
            continue
        loss += sgd_terms(w_out, hidden, contexts[window, j], weight, lr, accept, alias, negative, state, lane,
                          outputs, scores, partials, update)
        k = 0
        for _x in range(lane, dim, WARP):
            hidden[k] += update[k]
            summed[k] += update[k]
            k += 1
    for r in range(start, end):
        row = rows[r]
        k = 0
        for x in range(lane, dim, WARP):
            cuda.atomic.add(w_in, (row, x), summed[k])
            k += 1
    return loss


@cuda.jit(device=True)
def seed_state(state, seed, window):
    """``kernel_common.seed_state_py`` of ``(seed << 32) | window`` (``window_seed``), into ``state[0]``."""
    z = ((uint64(seed) << uint64(32)) | uint64(window)) + uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    z = z ^ (z >> uint64(31))
    state[0] = z if z != uint64(0) else uint64(1)


@cuda.jit
def train_windows(w_in, w_out, centers, contexts, mask, accept, alias, negative, lr, seed, losses):
    """Warp (block) ``b`` trains windows b, b + blocks, ... pair by pair; lane 0 writes its summed loss."""
    lane = cuda.threadIdx.x
    warp = cuda.blockIdx.x
    outputs = cuda.local.array(MAX_TERMS, int64)
    scores = cuda.local.array(MAX_TERMS, float32)
    inputs = cuda.local.array(PER_LANE, float32)
    update = cuda.local.array(PER_LANE, float32)
    state = cuda.local.array(1, uint64)
    partials = cuda.shared.array((MAX_TERMS, WARP), float32)
    total = 0.0
    for i in range(warp, centers.shape[0], cuda.gridDim.x):
        seed_state(state, seed, i)
        center = centers[i]
        for j in range(contexts.shape[1]):
            weight = mask[i, j]
            if weight == 0.0:
                continue
            total += train_pair(w_in, w_out, contexts[i, j], center, weight, lr, accept, alias, negative, state,
                                lane, outputs, scores, partials, inputs, update)
    if lane == 0:
        losses[warp] = total


@cuda.jit
def train_subword_windows(w_in, w_out, offsets, rows, centers, contexts, mask, accept, alias, negative, lr, seed,
                          losses):
    """fastText's skip-gram: warp ``b`` trains windows b, b + blocks, ... (input: the mean of the center's rows,
    :func:`train_subword_center`); a window without a valid pair is skipped, as on CPU."""
    lane = cuda.threadIdx.x
    warp = cuda.blockIdx.x
    outputs = cuda.local.array(MAX_TERMS, int64)
    scores = cuda.local.array(MAX_TERMS, float32)
    hidden = cuda.local.array(PER_LANE, float32)
    update = cuda.local.array(PER_LANE, float32)
    summed = cuda.local.array(PER_LANE, float32)
    state = cuda.local.array(1, uint64)
    partials = cuda.shared.array((MAX_TERMS, WARP), float32)
    total = 0.0
    for i in range(warp, centers.shape[0], cuda.gridDim.x):
        pairs = 0
        for j in range(contexts.shape[1]):
            if mask[i, j] != 0.0:
                pairs += 1
        if pairs == 0:
            continue  # a center alone in its sentence: no gather, no scatter
        seed_state(state, seed, i)
        total += train_subword_center(w_in, w_out, offsets, rows, i, centers, contexts, mask, lr, accept, alias,
                                      negative, state, lane, outputs, scores, partials, hidden, update, summed)
    if lane == 0:
        losses[warp] = total
