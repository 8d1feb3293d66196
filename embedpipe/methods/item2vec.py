"""``train --method item2vec``: skip-gram with negative sampling over users' item histories.

item2vec (Barkan & Koenigstein, 2016) is SGNS with a user's history as the "sentence", so it runs
on exactly the sgns machinery (:func:`embedpipe.methods.sgns.train_sequences_on_spark`, the PyTorch
core, barrier tasks, replicas, checkpoints); only the params differ:

* **window**: ``item_window`` (default 5) with ``shrink_window=False`` — every pair of items within
  ``item_window`` positions of each other in the time-ordered history is a positive of equal
  weight. Histories up to ``item_window + 1`` items are treated as sets (all pairs); longer ones are
  windowed over time order, so a ten-year history does not tie its first film to its last.
* **subsampling** (``item_sample``, default off) can thin popular items, as word2vec thins frequent
  words (sgns's ``sample`` is not used: it is tuned for text);
* **noise** is drawn from item frequency^0.75 (the histories' vocabulary counts);
* **epochs**, unless the job sets them, come from the log's size (:func:`default_epochs`): a
  small log needs many passes to match ALS, a large one a single pass.

The input must be a ``histories`` output (``sequences/`` ordered by time when the log had a time
column); a tokenize output is refused with a one-line ConfigError.

For recommendation, export the context vectors too (``export_output_vectors``) and score users
(mean of their items' input vectors) against them by dot (``evaluate --candidate-table``); without
subsampling (the default) that pair meets ALS's Recall@20 on the planted 2,000-user log (0.31-0.32
against 0.29), while with ``item_sample=1e-3`` the dot favours rare items and cosine on the input
table alone ranks better (0.26); the README's item2vec bullet has the measurements.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from embedpipe import schema
from embedpipe.errors import ConfigError
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.result import TrainedEmbeddings
from embedpipe.methods.sgns import sgns_params, task_threads, train_sequences_on_spark
from embedpipe.torchtrain.params import REFERENCE_BATCH

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.methods.inputs import TrainingInput

log = logging.getLogger(__name__)


#: Interactions an item2vec run should see in all, unless ``epochs`` is set: a small log gets more passes.
TARGET_INTERACTIONS = 20_000_000
#: item2vec's learning rate unless the job sets step_size: word2vec's 0.025, at which its Recall@20 was
#: measured (text sgns moved to 0.05 on text-corpus measurements that say nothing about watch logs).
ITEM2VEC_STEP_SIZE = 0.025
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
    """SGNS params for item2vec: the job's sgns settings with the full ``item_window``.

    ``interactions`` (the training interactions of the kept items) sets the epochs unless the job does.
    """
    # the automatic batch size was tuned on text; item2vec's defaults were measured at 1,024 windows
    return sgns_params(config, window=config.item_window, shrink_window=False, sample=config.item_sample,
                       lr=config.resolved_step_size(ITEM2VEC_STEP_SIZE),
                       threads=threads or config.threads, batch_size=config.batch_size or REFERENCE_BATCH,
                       epochs=config.resolved_epochs(default_epochs(interactions)))


def train_item2vec_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Item vectors from SGNS over every user's history (every pair within ``item_window`` is a positive)."""
    from pyspark.sql import functions as F

    from embedpipe.torchtrain import SGNSParams

    if data.kind != "histories":
        raise ConfigError(
            f"method item2vec needs a histories output as input (sequences/ of items), but {data.path} is a "
            f"{data.kind} output; run `embedpipe histories` on the interaction log, or use method sgns for text"
        )
    kept = data.kept_vocabulary(config.min_count)
    interactions = int(kept.agg(F.sum(schema.COUNT)).first()[0] or 0)  # one row: the vocabulary's total
    params = SGNSParams(**item2vec_params(config, task_threads(spark, config), interactions=interactions))
    if config.epochs is None:
        log.info("item2vec: epochs not set: %d pass(es) over %d training interactions (about %d in all)",
                 params.epochs, interactions, TARGET_INTERACTIONS)
    return train_sequences_on_spark(spark, config, data, params, method="item2vec")
