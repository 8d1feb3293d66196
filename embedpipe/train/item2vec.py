"""``train --method item2vec``: skip-gram with negative sampling over users' item histories.

item2vec (Barkan & Koenigstein, 2016) is SGNS with a user's history as the "sentence", so it runs
on exactly the sgns machinery (:func:`embedpipe.train.sgns.train_sequences_on_spark`, the PyTorch
core, barrier tasks, replicas, checkpoints); only the params differ:

* **window**: ``item_window`` (default 5) with ``shrink_window=False`` — every pair of items within
  ``item_window`` positions of each other in the time-ordered history is a positive of equal
  weight. Histories up to ``item_window + 1`` items are treated as sets (all pairs); longer ones are
  windowed over time order, so a ten-year history does not tie its first film to its last.
* **subsampling** (``item_sample``, default off) can thin popular items, as word2vec thins frequent
  words (sgns's ``sample`` is not used: it is tuned for text);
* **noise** is drawn from item frequency^0.75 (the histories' vocabulary counts).

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
from typing import TYPE_CHECKING

from embedpipe.errors import ConfigError
from embedpipe.jobconfig import TrainConfig
from embedpipe.train.base import TrainedEmbeddings
from embedpipe.train.sgns import sgns_params, task_threads, train_sequences_on_spark
from embedpipe.trainer.config import REFERENCE_BATCH

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.train.inputs import TrainingInput

log = logging.getLogger(__name__)


def item2vec_params(config: TrainConfig, threads: int | None = None) -> dict[str, object]:
    """SGNS params for item2vec: the job's sgns settings with the full ``item_window``."""
    # the automatic batch size was tuned on text; item2vec's defaults were measured at 1,024 windows
    return sgns_params(config, window=config.item_window, shrink_window=False, sample=config.item_sample,
                       threads=threads or config.threads, batch_size=config.batch_size or REFERENCE_BATCH)


def train_item2vec_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Item vectors from SGNS over every user's history (every pair within ``item_window`` is a positive)."""
    from embedpipe.trainer import SGNSParams

    if data.kind != "histories":
        raise ConfigError(
            f"method item2vec needs a histories output as input (sequences/ of items), but {data.path} is a "
            f"{data.kind} output; run `embedpipe histories` on the interaction log, or use method sgns for text"
        )
    params = SGNSParams(**item2vec_params(config, task_threads(spark, config)))
    return train_sequences_on_spark(spark, config, data, params, method="item2vec")
