"""One local SparkSession for the whole test session (chispa's pattern)."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import settings

# No per-example time limit: Hypothesis's 200 ms deadline is a wall-clock assertion, and the test machines
# are shared 2-core boxes (one such example took longer at a load average of 20).
settings.register_profile("embedpipe", deadline=None)
settings.load_profile("embedpipe")


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("embedpipe-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def broken_tables(tmp_path_factory) -> dict[str, str]:
    """Tables written by another tool (pyarrow + the documented ``_manifest.json``) that break the format.

    ``nan``: key 'b' has a NaN; ``duplicate``: key 'a' appears twice. Keys a, b, c; dim 2.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedpipe.table import FORMAT_NAME, MANIFEST_FILE

    cases = {
        "nan": (["a", "b", "c"], [[1.0, 0.0], [float("nan"), 1.0], [0.0, 1.0]]),
        "duplicate": (["a", "b", "a"], [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
    }
    root = tmp_path_factory.mktemp("broken-tables")
    paths = {}
    for name, (keys, vectors) in cases.items():
        path = root / name
        path.mkdir()
        pq.write_table(pa.table({
            "key": keys, "id": pa.array(range(len(keys)), pa.int64()), "count": pa.array([3, 2, 1], pa.int64()),
            "vector": pa.array(vectors, pa.list_(pa.float32())),
        }), path / "part-00000.parquet")
        manifest = {"format": FORMAT_NAME, "format_version": 1, "method": "other", "key_kind": "token", "dim": 2,
                    "rows": len(keys), "params": {}, "tokenizer": None, "source": "another tool", "seed": None}
        (path / MANIFEST_FILE).write_text(json.dumps(manifest))
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="session")
def write_table(spark):
    """``write_table(path, rows, dim=..., **kwargs)``: rows ``(key, id, count, vector)`` written as an embedding
    table through the real writer (validation, manifest, atomic commit); returns the manifest."""
    from embedpipe.table import write_embedding_table

    def write(path, rows, *, dim: int, **kwargs):
        frame = spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>")
        settings = {"method": "test", "params": {}, "source": "test", "seed": 1, **kwargs}
        return write_embedding_table(spark, frame, str(path), dim=dim, **settings)

    return write
