"""``train --method item2vec``: skip-gram with negative sampling over users' item histories.

item2vec (Barkan & Koenigstein, 2016) is SGNS with a user's history as the "sentence", so it runs
on exactly the sgns machinery (:func:`embedpipe.methods.sgns.train_sequences_on_spark`, the PyTorch
core, barrier tasks, replicas, checkpoints); only the params differ:

* **window** (``item2vec.window``, default 5) with ``shrink_window=False`` — every pair of items
  within ``window`` positions of each other in the time-ordered history is a positive of equal
  weight. Histories up to ``window + 1`` items are treated as sets (all pairs); longer ones are
  windowed over time order, so a ten-year history does not tie its first film to its last.
* **no subsampling**: thinning popular items made the context vectors favour rare items and cost
  two-tower recall (docs/decisions.md), so item2vec passes ``sample=0`` to the core;
* **noise** is drawn from item frequency^``noise_power`` (the histories' vocabulary counts; 0.5, below
  word2vec's 0.75: popular items are drawn less as negatives, which raised Recall@20 on MovieLens,
  as Caselles-Dupré et al. (2018) found for recommendation);
* **epochs**, unless ``item2vec.epochs`` is set, come from the log's size (:func:`default_epochs`):
  a small log needs many passes to match ALS, a large one a single pass.

The input must be a ``histories`` output (``sequences/`` ordered by time when the log had a time
column); a tokenize output is refused with a one-line ConfigError.

* **one matrix** (``tied``) unless two towers are asked for: SGNS's input vectors alone put items with
  similar *contexts* close, which ranks a user's next items below popularity (MovieLens Recall@20
  0.01-0.02), while one matrix trained as both sides puts items that *co-occur* close, so the table a
  Parquet consumer scores alone (mean of a user's items, cosine) ranks them (0.11; docs/decisions.md).

For recommendation by the model's own score, export the context vectors too
(``item2vec.export_output_vectors``, which trains two matrices) and score users (mean of their items'
input vectors) against them by dot (``evaluate --candidate-table``): that pair meets ALS's Recall@20
on the planted 2,000-user log (0.31-0.32 against 0.29) and ranks above the tied table on MovieLens
(0.14 against 0.11).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from embedpipe import schema
from embedpipe.errors import ConfigError
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.result import TrainedEmbeddings
from embedpipe.methods.sgns import core_params, task_threads, train_sequences_on_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.methods.inputs import TrainingInput
    from embedpipe.methods.settings import Item2VecSettings

log = logging.getLogger(__name__)


#: Interactions an item2vec run should see in all, unless ``epochs`` is set: a small log gets more passes.
TARGET_INTERACTIONS = 20_000_000
#: The most passes :func:`default_epochs` gives, however small the log.
MAX_DEFAULT_EPOCHS = 30


def default_epochs(interactions: int) -> int:
    """Passes over ``interactions`` training interactions that reach about ``TARGET_INTERACTIONS`` updates.

    Why a budget, not a fixed count: one pass over a 1M-user log (45M interactions) already meets
    ALS's Recall@20, while a 6,040-user log (270k) needs 20+ passes to; a fixed count either
    undertrains small logs or wastes hours on large ones. The budget costs ~30 s on one core.
    """
    return max(1, min(MAX_DEFAULT_EPOCHS, math.ceil(TARGET_INTERACTIONS / max(interactions, 1))))


def item2vec_params(config: TrainConfig, threads: int | None = None, *, interactions: int) -> dict[str, object]:
    """SGNS params for item2vec: full windows, no subsampling, epochs from ``interactions`` unless set.

    ``interactions`` (the training interactions of the vocabulary) sets the epochs unless the job does.
    """
    settings: Item2VecSettings = config.settings
    epochs = settings.epochs if settings.epochs is not None else default_epochs(interactions)
    return {**core_params(config, threads=threads or config.threads, epochs=epochs, sample=0.0, shrink_window=False),
            "noise_power": settings.noise_power, "tied": settings.resolved_tied()}


def train_item2vec_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Item vectors from SGNS over every user's history (every pair within ``window`` is a positive)."""
    import pyarrow.compute as pc

    from embedpipe.torchtrain import SGNSParams

    if data.kind != "histories":
        raise ConfigError(
            f"method item2vec needs a histories output as input (sequences/ of items), but {data.path} is a "
            f"{data.kind} output; run `embedpipe histories` on the interaction log, or use method sgns for text"
        )
    interactions = int(pc.sum(data.vocabulary().column(schema.COUNT)).as_py() or 0)  # the vocabulary's total
    params = SGNSParams(**item2vec_params(config, task_threads(spark, config), interactions=interactions))
    if config.settings.epochs is None:
        log.info("item2vec: epochs not set: %d pass(es) over %d training interactions (about %d in all)",
                 params.epochs, interactions, TARGET_INTERACTIONS)
    return train_sequences_on_spark(spark, config, data, params, method="item2vec")
