"""The jobs/ scripts run under spark-submit exactly like the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _spark_submit() -> str:
    path = Path(sys.executable).parent / "spark-submit"
    if not path.exists():
        pytest.skip("spark-submit is not installed beside this interpreter")
    return str(path)


def _submit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [_spark_submit(), "--master", "local[1]", "--conf", "spark.ui.enabled=false", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # over 20 s: runs in CI's second (slow) pass
def test_tokenize_through_spark_submit(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\nthe dog sat\n서울 은 한국\n", encoding="utf-8")
    out = tmp_path / "tokens"
    result = _submit("jobs/tokenize.py", "--input", str(corpus), "--output", str(out), "--min-count", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for part in ("tokens", "vocab", "bow", "report.json"):
        assert (out / part).exists(), part

    missing = _submit("jobs/tokenize.py", "--input", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "x"))
    assert missing.returncode != 0
    # spark-submit's PythonRunner merges the driver's stderr into its own stdout.
    output = missing.stdout + missing.stderr
    assert f"embedpipe tokenize: error: input not found: {tmp_path / 'nope.txt'}" in output
    assert "Traceback" not in output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # over 20 s: runs in CI's second (slow) pass
def test_embed_and_neighbors_through_spark_submit(spark, tmp_path):
    import dataclasses

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedpipe.jobconfig import TokenizerSettings
    from embedpipe.lookup import open_table
    from embedpipe.table import write_embedding_table

    keys = ["the", "cat", "sat", "서울"]
    vectors = np.random.default_rng(5).normal(size=(len(keys), 3)).astype(np.float32)
    rows = [(k, i, 10 - i, v.tolist()) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))]
    table = str(tmp_path / "table")
    write_embedding_table(
        spark, spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>"), table,
        method="test", dim=3, params={}, source="test", seed=1, tokenizer=dataclasses.asdict(TokenizerSettings()),
    )
    documents = [["the", "cat", "the"], ["서울", "zebra"], []]
    docs = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc_id": ["a", "b", "c"], "tokens": pa.array(documents, pa.list_(pa.string()))}), docs)

    out = tmp_path / "embedded"
    result = _submit("jobs/embed.py", "--table", table, "--input", str(docs), "--output", str(out),
                     "--combiner", "mean")
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    written = pq.read_table(out).to_pydict()
    api = open_table(table)
    for doc_id, vector in zip(written["doc_id"], written["vector"], strict=True):
        expected = api.embed(documents["abc".index(doc_id)], combiner="mean")
        if expected is None:
            assert vector is None
        else:
            np.testing.assert_allclose(vector, expected, rtol=1e-6)

    neighbors = tmp_path / "neighbors"
    result = _submit("jobs/neighbors.py", "--table", table, "--output", str(neighbors), "--k", "2")
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    found = pq.read_table(neighbors).to_pydict()
    assert sorted(set(found["key"])) == sorted(keys)
    top = {k: n for k, n, r in zip(found["key"], found["neighbor"], found["rank"], strict=True) if r == 1}
    assert top == {key: api.most_similar(key, 1)[0][0] for key in keys}
