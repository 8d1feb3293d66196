"""The Spark-free lookup API and the README's DuckDB recipe, on a table written by the real writer."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest

from embedpipe.errors import InputError, TableError
from embedpipe.jobconfig import TokenizerSettings
from embedpipe.lookup import open_table, read_stop_words

KEYS = ["paris", "rome", "berlin", "dog", "cat", "서울"]


@pytest.fixture(scope="module")
def table_path(spark, tmp_path_factory):
    from embedpipe.table import write_embedding_table

    vectors = np.random.default_rng(11).normal(size=(len(KEYS), 5)).astype(np.float32)
    path = str(tmp_path_factory.mktemp("api") / "words")
    rows = [(k, i, 10 - i, v.tolist()) for i, (k, v) in enumerate(zip(KEYS, vectors, strict=True))]
    frame = spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>")
    settings = dataclasses.asdict(TokenizerSettings(stop_words="english"))
    write_embedding_table(spark, frame, path, method="test", dim=5, params={}, source="t", seed=1, tokenizer=settings)
    return path


def test_lookup_basics(table_path):
    table = open_table(table_path)
    assert len(table) == 6 and table.dim == 5 and "서울" in table and "nope" not in table
    np.testing.assert_array_equal(table.vectors_of(["rome", "nope"], oov="zero")[1], np.zeros(5, np.float32))
    with pytest.raises(KeyError, match="'nope' is not in the table"):
        table.vectors_of(["rome", "nope"])
    unit = table.vectors / np.linalg.norm(table.vectors, axis=1, keepdims=True)
    scores = unit @ unit[0]
    expected = [KEYS[j] for j in np.argsort(-scores) if j != 0][:3]
    assert [k for k, _ in table.most_similar("paris", 3)] == expected
    # Raw text uses the manifest's tokenizer: lowercase, English stop words dropped (read without a JVM).
    assert "the" in read_stop_words("english")
    assert table.tokenize("The DOG and the Cat in 서울") == ["dog", "cat", "서울"]
    np.testing.assert_allclose(table.embed_text("The DOG, the cat!"), (table.vector("dog") + table.vector("cat")) / 2,
                               rtol=1e-6)
    assert table.embed(["zebra"]) is None and table.embed([]) is None
    np.testing.assert_array_equal(table.embed(["zebra"], oov="zero"), np.zeros(5, np.float32))
    with pytest.raises(KeyError, match="token 'zebra' is not in the table"):
        table.embed(["dog", "zebra"], oov="fail")


def test_open_errors(tmp_path, table_path):
    import json
    import shutil

    with pytest.raises(InputError, match=f"embedding table not found: {tmp_path / 'x'}"):
        open_table(str(tmp_path / "x"))
    broken = tmp_path / "broken"
    shutil.copytree(table_path, broken)
    manifest = json.loads((broken / "_manifest.json").read_text())
    (broken / "_manifest.json").write_text(json.dumps({**manifest, "dim": 7}))
    with pytest.raises(TableError) as caught:
        open_table(str(broken))
    # the example is the smallest offending key, as the writer's and Spark's checks name it
    assert str(caught.value) == f"embedding table {broken} has 6 vectors that do not have dim = 7 values, e.g. key " \
                                "'berlin' has 5 values"
    (broken / "_manifest.json").write_text(json.dumps({**manifest, "tokenizer": None, "key_kind": "item"}))
    with pytest.raises(TableError, match="records no tokenizer"):
        open_table(str(broken)).embed_text("dog")


def test_readme_duckdb_recipe(table_path):
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    sql = re.search(r"```sql\n(.*?)```", readme, re.S).group(1)
    sql = sql.replace("out/demo/tables/words", table_path)
    rows = duckdb.sql(sql).fetchall()
    expected = open_table(table_path).most_similar("paris", 5)
    assert [k for k, _ in rows] == [k for k, _ in expected]
    np.testing.assert_allclose([s for _, s in rows], [s for _, s in expected], rtol=1e-5)
