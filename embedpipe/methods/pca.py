"""PCA / truncated SVD of the bag-of-words matrix (documents x vocabulary), LSA style.

Word vectors are the vocabulary rows of the (V, k) component matrix, scaled per ``pca.scaling``
(``singular``: times the singular values, like LSA term vectors; ``sqrt``: their square roots;
``none``). Document vectors are each document's projection onto the components, ``X·V``
(= ``U·S``); with the centred ``pca`` solver the column means are subtracted first, so they are
the usual principal-component scores.

Two solvers:

* ``pca`` -- ``pyspark.ml.feature.PCA``: centred. MLlib forms the dense V x V covariance and
  decomposes it on the driver, so cost grows with the cube of the vocabulary and it refuses more
  than 65,535 columns. Its singular values are recovered from the explained-variance ratios and
  the total variance: ``s_i = sqrt((n - 1) * ratio_i * trace(cov))``.
* ``svd`` -- ``RowMatrix.computeSVD(k, computeU=False)`` of the uncentred matrix: distributed
  (ARPACK over Gramian-vector products for large vocabularies), fine for 200,000 words. ``U`` is
  never formed: document vectors are computed as ``X·V`` in an Arrow UDF with ``V`` broadcast.

``auto`` picks ``pca`` when the vocabulary has at most ``pca.max_columns`` words, else ``svd``
(the settings are ``[train.pca]``, :class:`~embedpipe.methods.settings.PCASettings`).

Components have an arbitrary sign; each is flipped so that its largest-magnitude entry is positive,
so reruns write the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.arrow_vectors import matrix_to_list_array
from embedpipe.errors import ConfigError, EmptyResultError
from embedpipe.methods.result import EmbeddingRows, TrainedEmbeddings, flatten_lists, vectors_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.inputs import TrainingInput
    from embedpipe.methods.settings import PCASettings

log = logging.getLogger(__name__)

MLLIB_PCA_MAX_COLUMNS = 65_535
# Elements of the (nnz, k) product formed at once when projecting rows (bounds executor memory).
_PROJECTION_CHUNK_ELEMENTS = 1 << 22


def train_pca(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Fit PCA or a truncated SVD of the input's count matrix; word (and optionally row) vectors."""
    matrix = data.matrix()
    features = matrix.select(schema.FEATURES).persist()  # read by the fit and the summary passes
    try:
        return _train_pca(spark, config, data, matrix, features)
    finally:
        features.unpersist()


def _train_pca(
    spark: SparkSession, config: TrainConfig, data: TrainingInput, matrix: DataFrame, features: DataFrame
) -> TrainedEmbeddings:
    from pyspark.sql import functions as F

    columns = data.vocab_size
    rows = features.count()
    if rows == 0:
        raise EmptyResultError(f"train input {data.path} has no {data.row_kind} vectors to decompose")
    limit = min(columns, rows)
    if config.dim > limit:
        raise ConfigError(
            f"config key 'dim' must be <= min(vocabulary size, {data.row_kind}s) = {limit} for pca "
            f"(vocabulary {columns}, {data.row_kind}s {rows}), got {config.dim}"
        )
    settings: PCASettings = config.settings
    solver, reason = choose_solver(settings.solver, columns, settings.max_columns)
    log.info("pca: solver %s (%s); %d %ss x %d columns, k=%d", solver, reason, rows, data.row_kind, columns,
             config.dim)
    if solver == "pca" and columns > 5_000:
        log.warning("pca: MLlib PCA decomposes a %d x %d covariance on the driver (cost ~ columns^3); "
                    "pca.solver=svd scales better", columns, columns)
    if solver == "pca":
        components, singular, ratios, mean = fit_mllib_pca(features, config.dim, rows)
    else:
        components, singular, ratios = fit_truncated_svd(features, config.dim, rows, columns)
        mean = None
    components = orient_components(components)
    word_vectors = scale_components(components, singular, settings.scaling)

    params: dict[str, Any] = {
        **config.recorded_params(),
        "solver_used": solver,
        "solver_reason": reason,
        "centred": mean is not None,
        "implementation": (
            "pyspark.ml.feature.PCA" if solver == "pca"
            else "pyspark.mllib.linalg.distributed.RowMatrix.computeSVD"
        ),
        "input_kind": data.kind,
        "vocab_size": columns,
        f"{data.row_kind}s": rows,
        "singular_values": [float(s) for s in singular],
        "explained_variance_ratio": [float(r) for r in ratios],
    }
    vocab_vectors = vectors_frame(spark, word_vectors)
    key_rows = data.vocab.join(F.broadcast(vocab_vectors), schema.ID).select(
        F.col(schema.TOKEN).alias(schema.KEY), schema.ID, schema.COUNT, schema.VECTOR
    )
    documents = None
    document_params: dict[str, Any] = {}
    if settings.doc_output:
        offset = None if mean is None else mean @ components
        documents = EmbeddingRows(
            document_rows(data, matrix, components, offset), key_kind=data.row_kind, expected_rows=rows
        )
        document_params = {
            **params,
            "vectors": (
                "projection (x - column means)·V: principal-component scores" if mean is not None
                else "projection x·V (= U·S): uncentred"
            ),
        }
    return TrainedEmbeddings(
        keys=EmbeddingRows(key_rows, key_kind=data.key_kind, expected_rows=columns),
        dim=config.dim,
        params=params,
        path=solver,
        seed=None,
        documents=documents,
        document_params=document_params,
    )


def choose_solver(requested: str, columns: int, max_columns: int) -> tuple[str, str]:
    """Resolve ``pca.solver`` to the path that will run, and say why."""
    if requested == "pca":
        if columns > MLLIB_PCA_MAX_COLUMNS:
            raise ConfigError(
                f"config key 'pca.solver' is 'pca' but the vocabulary has {columns} columns; MLlib PCA supports "
                f"at most {MLLIB_PCA_MAX_COLUMNS}: use pca.solver=svd or auto"
            )
        return "pca", "pca.solver=pca requested"
    if requested == "svd":
        return "svd", "pca.solver=svd requested"
    if columns <= max_columns:
        return "pca", f"pca.solver=auto and vocabulary size {columns} <= pca.max_columns={max_columns}"
    return "svd", f"pca.solver=auto and vocabulary size {columns} > pca.max_columns={max_columns}"


def fit_mllib_pca(
    features: DataFrame, k: int, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centred PCA with MLlib: (components V x k, singular values, variance ratios, column means)."""
    from pyspark.ml.feature import PCA
    from pyspark.ml.stat import Summarizer
    from pyspark.sql import functions as F

    model = PCA(k=k, inputCol=schema.FEATURES).fit(features)
    components = model.pc.toArray()
    ratios = model.explainedVariance.toArray()
    summary = features.select(
        Summarizer.metrics("mean", "variance").summary(F.col(schema.FEATURES)).alias("s")
    ).first()["s"]
    mean = summary["mean"].toArray()
    total_variance = float(summary["variance"].toArray().sum())  # trace of the covariance (n - 1 denominator)
    singular = np.sqrt(np.maximum(ratios * total_variance, 0.0) * max(rows - 1, 1))
    return components, singular, ratios, mean


def fit_truncated_svd(
    features: DataFrame, k: int, rows: int, columns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uncentred truncated SVD with a distributed RowMatrix: (V x k, singular values, variance ratios)."""
    from pyspark.ml.stat import Summarizer
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.mllib.util import MLUtils
    from pyspark.sql import functions as F

    # RowMatrix wants mllib vectors; the conversion and the matrix stay in the JVM.
    mllib_rows = MLUtils.convertVectorColumnsFromML(features, schema.FEATURES)
    svd = RowMatrix(mllib_rows, rows, columns).computeSVD(k, computeU=False)
    singular = svd.s.toArray()
    if len(singular) < k:
        raise ConfigError(
            f"config key 'dim' must be <= the rank of the {rows} x {columns} count matrix for the svd solver "
            f"(it has {len(singular)} non-zero singular values), got {k}"
        )
    norms = features.select(Summarizer.normL2(F.col(schema.FEATURES)).alias("norms")).first()["norms"].toArray()
    squares = float(norms @ norms)  # squared Frobenius norm: the total the singular values explain
    ratios = singular**2 / squares if squares else np.zeros_like(singular)
    return svd.V.toArray(), singular, ratios


def orient_components(components: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry (the first, on ties) is positive."""
    components = np.array(components, dtype=np.float64, copy=True)
    if components.size == 0:
        return components
    pivots = np.argmax(np.abs(components), axis=0)
    signs = np.sign(components[pivots, np.arange(components.shape[1])])
    signs[signs == 0] = 1.0
    return components * signs


def scale_components(components: np.ndarray, singular: np.ndarray, scaling: str) -> np.ndarray:
    """Word vectors from components: times ``singular`` values, their square roots, or unscaled."""
    if scaling == "singular":
        return components * singular
    if scaling == "sqrt":
        return components * np.sqrt(singular)
    if scaling == "none":
        return components.copy()
    raise ConfigError(f"config key 'pca_scaling' must be one of singular, sqrt, none, got {scaling!r}")


def document_rows(
    data: TrainingInput, matrix: DataFrame, components: np.ndarray, offset: np.ndarray | None
) -> DataFrame:
    """Row vectors (key = doc_id, id = rank in doc_id order, count = tokens in the row, vector)."""
    from pyspark.sql import functions as F

    vectors = project_rows(matrix, components, offset)
    numbers = number_rows(matrix.select(schema.DOC_ID))
    lengths = data.sentences().select(schema.DOC_ID, F.size(schema.TOKENS).cast("bigint").alias(schema.COUNT))
    return (
        vectors.join(numbers, schema.DOC_ID)
        .join(lengths, schema.DOC_ID, "left")
        .select(
            F.col(schema.DOC_ID).alias(schema.KEY),
            schema.ID,
            F.coalesce(F.col(schema.COUNT), F.lit(0).cast("bigint")).alias(schema.COUNT),
            schema.VECTOR,
        )
    )


def number_rows(keys: DataFrame) -> DataFrame:
    """``doc_id``, ``id``: each key's rank in sorted order, 0..n-1, without a single-partition window.

    Only the keys pass through Python (``zipWithIndex`` on the sorted RDD); nothing is collected.
    """
    ordered = keys.select(schema.DOC_ID).orderBy(schema.DOC_ID)
    indexed = ordered.rdd.map(lambda row: row[0]).zipWithIndex()
    return keys.sparkSession.createDataFrame(indexed, f"{schema.DOC_ID} string, {schema.ID} bigint")


def project_rows(matrix: DataFrame, components: np.ndarray, offset: np.ndarray | None) -> DataFrame:
    """``doc_id``, ``vector`` = (sparse row)·components (- offset), computed per Arrow batch on executors."""
    spark = matrix.sparkSession
    shared = spark.sparkContext.broadcast(np.ascontiguousarray(components, dtype=np.float32))
    shift = None if offset is None else np.asarray(offset, dtype=np.float32)

    def project_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        weights = shared.value
        for batch in batches:
            vectors = project_sparse_rows(batch.column(1), batch.column(2), weights)
            if shift is not None:
                vectors -= shift
            column = matrix_to_list_array(vectors)
            yield pa.RecordBatch.from_arrays([batch.column(0), column], names=[schema.DOC_ID, schema.VECTOR])

    return matrix.select(schema.DOC_ID, schema.INDICES, schema.VALUES).mapInArrow(
        project_batches, f"{schema.DOC_ID} string, {schema.VECTOR} array<float>"
    )


def project_sparse_rows(indices: pa.Array, values: pa.Array, weights: np.ndarray) -> np.ndarray:
    """Dense (rows, k) product of sparse rows given as Arrow list columns with a (V, k) matrix.

    Rows are processed in chunks so the (nnz, k) intermediate stays bounded; null rows are zero.
    """
    index_offsets, index_array = flatten_lists(indices)
    value_offsets, value_array = flatten_lists(values)
    flat_indices = index_array.to_numpy(zero_copy_only=False)
    flat_values = value_array.to_numpy(zero_copy_only=False)
    if not np.array_equal(index_offsets, value_offsets):
        raise ValueError("indices and values lists differ in length")
    rows, dim = len(index_offsets) - 1, weights.shape[1]
    result = np.zeros((rows, dim), dtype=np.float32)
    flat_indices = flat_indices.astype(np.int64, copy=False)
    flat_values = flat_values.astype(np.float32, copy=False)
    budget = max(_PROJECTION_CHUNK_ELEMENTS // max(dim, 1), 1)
    first = 0
    while first < rows:
        last = max(int(np.searchsorted(index_offsets, index_offsets[first] + budget, side="right")) - 1, first + 1)
        last = min(last, rows)
        starts = index_offsets[first:last]
        begin, end = int(starts[0]), int(index_offsets[last])
        nonempty = np.diff(index_offsets[first:last + 1]) > 0
        if end > begin:
            products = flat_values[begin:end, None] * weights[flat_indices[begin:end]]
            result[first:last][nonempty] = np.add.reduceat(products, starts[nonempty] - begin, axis=0)
        first = last
    return result
