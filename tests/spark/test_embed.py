"""The embed job: broadcast and shuffle plans, the Python API and a NumPy reference agree."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_approx_df_equality

from embedpipe.cli import main
from embedpipe.jobconfig import EmbedConfig, TokenizerSettings
from embedpipe.lookup import open_table
from embedpipe.lookup.embed import plan_embed

KEYS = ["the", "cat", "sat", "dog", "서울", "mat"]
COUNTS = [50, 20, 10, 8, 5, 1]
DIM = 4
ROWS = [
    ("d0", ["the", "cat", "sat", "the"]),  # repeats
    ("d1", ["dog", "zebra", "서울", "zebra"]),  # OOV (repeated)
    ("d2", []),  # empty
    ("d3", None),  # NULL
    ("d4", ["zebra"]),  # nothing found
    ("d5", ["mat", None, "cat"]),  # NULL token
]


def _vectors() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(len(KEYS), DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def table_path(spark, tmp_path_factory):
    from embedpipe.table import write_embedding_table

    path = str(tmp_path_factory.mktemp("embed") / "table")
    rows = [(k, i, c, v.tolist()) for i, (k, c, v) in enumerate(zip(KEYS, COUNTS, _vectors(), strict=True))]
    frame = spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>")
    write_embedding_table(spark, frame, path, method="test", dim=DIM, params={}, source="test", seed=1,
                          tokenizer=dataclasses.asdict(TokenizerSettings()))
    return path


@pytest.fixture(scope="module")
def input_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("embed_in") / "docs.parquet"
    texts = [None if t is None else " ".join(x or "" for x in t).upper() for _, t in ROWS]
    indices = [None if t is None else [KEYS.index(x) if x in KEYS else 99 for x in t if x] for _, t in ROWS]
    values = [None if i is None else [float(j % 3) + 0.5 for j in range(len(i))] for i in indices]
    pq.write_table(pa.table({
        "doc_id": [d for d, _ in ROWS],
        "tokens": pa.array([t for _, t in ROWS], pa.list_(pa.string())),
        "text": texts,
        "indices": pa.array(indices, pa.list_(pa.int32())),
        "values": pa.array(values, pa.list_(pa.float64())),
    }), path)
    return str(path)


def _reference(tokens, combiner: str, oov: str, idf: dict[str, float] | None = None):
    """Obviously-correct per-row NumPy reference of the combiners."""
    if tokens is None:
        return None
    lookup = dict(zip(KEYS, _vectors(), strict=True))
    counts = Counter(t for t in tokens if t is not None)
    found = {k: c for k, c in counts.items() if k in lookup}
    if not counts or (oov == "skip" and not found):
        return None
    total = np.zeros(DIM, dtype=np.float64)
    for key, count in found.items():
        weight = {"sum_distinct": 1.0, "tfidf": count * (idf or {}).get(key, 0.0)}.get(combiner, float(count))
        total += weight * lookup[key].astype(np.float64)
    weights = list((counts if oov == "zero" else found).values())
    if combiner == "mean":
        total /= sum(weights)
    elif combiner == "sqrtn":
        total /= math.sqrt(sum(w * w for w in weights))
    return total


def _table_idf() -> dict[str, float]:
    n = sum(COUNTS)
    return {k: math.log((1 + n) / (1 + c)) + 1 for k, c in zip(KEYS, COUNTS, strict=True)}


def _config(table_path, input_path, **kw) -> EmbedConfig:
    return EmbedConfig(table=table_path, input=input_path, output="unused", **kw)


def _collect(frame) -> dict[str, tuple]:
    return {r["doc_id"]: (r["vector"], r["tokens_found"], r["tokens_total"]) for r in frame.collect()}


COMBINERS = ("mean", "sum", "sum_distinct", "tfidf", "sqrtn")


@pytest.mark.parametrize("oov", ["skip", "zero"])
def test_plans_api_and_reference_agree_for_every_combiner(spark, table_path, input_path, oov):
    from pyspark.sql import functions as F

    lookup = open_table(table_path)
    # One Spark job per strategy: every combiner's plan, tagged and unioned (tiny data; jobs cost more than rows).
    frames = {
        strategy: _union([
            plan_embed(spark, _config(table_path, input_path, combiner=combiner, oov=oov, strategy=strategy))
            .result.select(F.lit(combiner).alias("combiner"), "doc_id", "vector", "tokens_found", "tokens_total")
            for combiner in COMBINERS
        ])
        for strategy in ("broadcast", "shuffle")
    }
    assert_approx_df_equality(frames["broadcast"], frames["shuffle"], 1e-6, ignore_row_order=True)
    spark_rows, shuffle_rows = ({(r["combiner"], r["doc_id"]): (r["vector"], r["tokens_found"], r["tokens_total"])
                                 for r in frames[strategy].collect()} for strategy in ("broadcast", "shuffle"))
    assert spark_rows.keys() == shuffle_rows.keys() == {(c, d) for c in COMBINERS for d, _ in ROWS}
    for combiner in COMBINERS:
        api = lookup.embed_batch([t for _, t in ROWS], combiner=combiner, oov=oov)
        for i, (doc, tokens) in enumerate(ROWS):
            expected = _reference(tokens, combiner, oov, _table_idf())
            vector, found, total = spark_rows[combiner, doc]
            # The two Spark plans sum in the same order: bit-identical, not just close.
            assert shuffle_rows[combiner, doc] == spark_rows[combiner, doc], (combiner, doc)
            if expected is None:
                assert vector is None and not api.has_vector[i], (combiner, oov, doc)
            else:
                np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6, err_msg=f"{combiner} {doc}")
                np.testing.assert_array_equal(np.asarray(vector, np.float32), api.vectors[i])
            assert (found, total) == (int(api.found[i]), int(api.total[i]))
        counts = {doc: spark_rows[combiner, doc][1:] for doc in ("d1", "d3", "d5")}
        assert counts == {"d1": (2, 4), "d3": (0, 0), "d5": (2, 2)}, combiner


def _union(frames):
    first, *rest = frames
    for frame in rest:
        first = first.unionByName(frame)
    return first


def test_text_sparse_normalize_and_input_idf(spark, table_path, input_path):
    lookup = open_table(table_path)
    # Raw text is tokenized with the manifest's settings (lowercase), so it matches the token column.
    text = _collect(plan_embed(spark, _config(table_path, input_path, column="text", strategy="shuffle",
                                              normalize=True)).result)
    api = lookup.embed_batch([t for _, t in ROWS], normalize=True)
    for i, (doc, _) in enumerate(ROWS):
        if api.has_vector[i]:
            np.testing.assert_array_equal(np.asarray(text[doc][0], np.float32), api.vectors[i])
            assert abs(np.linalg.norm(text[doc][0]) - 1) < 1e-5
        else:
            assert text[doc][0] is None
    assert lookup.embed_text("The CAT, sat!", normalize=True) is not None
    # Sparse indices (table ids) + values, both plans.
    indices = [None if t is None else [KEYS.index(x) if x in KEYS else 99 for x in t if x] for _, t in ROWS]
    values = [None if i is None else [float(j % 3) + 0.5 for j in range(len(i))] for i in indices]
    expected = lookup.embed_sparse_batch(indices, values, combiner="sqrtn", oov="zero")
    for strategy in ("broadcast", "shuffle"):
        got = _collect(plan_embed(spark, _config(table_path, input_path, column="indices", values_column="values",
                                                 combiner="sqrtn", oov="zero", strategy=strategy)).result)
        for i, (doc, _) in enumerate(ROWS):
            assert (got[doc][0] is not None) == bool(expected.has_vector[i])
            if got[doc][0] is not None:
                np.testing.assert_array_equal(np.asarray(got[doc][0], np.float32), expected.vectors[i])
    # tf-idf with document frequencies from the input (5 non-NULL rows).
    idf = lookup.input_idf([t for _, t in ROWS])
    expected = lookup.embed_batch([t for _, t in ROWS], combiner="tfidf", idf=idf)
    for strategy in ("broadcast", "shuffle"):
        got = _collect(plan_embed(spark, _config(table_path, input_path, combiner="tfidf", idf="input",
                                                 strategy=strategy)).result)
        for i, (doc, _) in enumerate(ROWS):
            if expected.has_vector[i]:
                np.testing.assert_allclose(got[doc][0], expected.vectors[i], rtol=1e-6)


def test_embed_cli_end_to_end_twice(spark, table_path, input_path, tmp_path, capsys):
    out = tmp_path / "embedded"
    args = ["embed", "--table", table_path, "--input", input_path, "--output", str(out), "--combiner", "mean"]
    for _ in range(2):
        assert main(args) == 0
    written = spark.read.parquet(str(out))
    assert written.columns == ["doc_id", "tokens", "text", "indices", "values", "vector", "tokens_found",
                               "tokens_total"]
    assert written.count() == len(ROWS)
    assert written.schema["vector"].dataType.simpleString() == "array<float>"
    # auto picks the broadcast plan for a tiny table; forcing shuffle writes the same rows.
    shuffled = tmp_path / "shuffled"
    assert main([*args[:-4], "--output", str(shuffled), "--strategy", "shuffle"]) == 0
    assert_approx_df_equality(written, spark.read.parquet(str(shuffled)), 1e-7, ignore_row_order=True)


@pytest.mark.parametrize(("strategy", "oov", "null_vectors"), [
    ("broadcast", "skip", 3),
    pytest.param("shuffle", "zero", 2, marks=pytest.mark.slow),  # ~6 s at load 8: joins and a shuffle
])
def test_summary_counts_what_was_written(spark, table_path, input_path, tmp_path, strategy, oov, null_vectors):
    """The job's figures (aggregated as the rows are written, not read back) match the written rows."""
    from embedpipe.lookup.embed import run_embed

    out = tmp_path / "out"
    summary = run_embed(spark, dataclasses.replace(_config(table_path, input_path, strategy=strategy, oov=oov),
                                                   output=str(out)))
    written = pq.read_table(str(out)).to_pydict()
    assert (summary["rows"], summary["tokens"], summary["tokens_found"]) == (6, 11, 8)
    assert (sum(written["tokens_total"]), sum(written["tokens_found"])) == (11, 8)
    assert summary["null_vectors"] == written["vector"].count(None) == null_vectors
    assert summary["oov_rate"] == pytest.approx(3 / 11, abs=1e-6) and summary["strategy"] == strategy


def _error(capsys, args, out) -> str:
    assert main(args) != 0
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_embed_errors_are_one_line_and_write_nothing(spark, table_path, input_path, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["embed", "--table", table_path, "--input", input_path, "--output", str(out)]
    assert _error(capsys, [*base, "--column", "nope"], out) == (
        f"embedpipe embed: error: input {input_path} lacks the column to embed (missing: nope (column); "
        "present: doc_id, tokens, text, indices, values)"
    )
    assert _error(capsys, [*base, "--dim", "7"], out) == (
        f"embedpipe embed: error: embedding table {table_path} has dim 4, expected 7 (config key 'dim')"
    )
    assert _error(capsys, [*base, "--oov", "fail"], out) == (
        f"embedpipe embed: error: 3 of 11 tokens of column 'tokens' of {input_path} are not in embedding table "
        f"{table_path} (oov = fail), e.g. 'zebra'"
    )
    assert _error(capsys, [*base, "--column", "values"], out) == (
        f"embedpipe embed: error: column 'values' of {input_path} must be an array of tokens, a string or "
        "sparse indices, found array<double>"
    )
    missing_table = str(tmp_path / "no-table")
    assert _error(capsys, ["embed", "--table", missing_table, "--input", input_path, "--output", str(out)],
                  out) == f"embedpipe embed: error: embedding table not found: {missing_table}"


def test_item_table_with_text_and_mismatched_tokenizer(spark, table_path, input_path, tmp_path, capsys):
    import json
    import shutil

    items = tmp_path / "items"
    shutil.copytree(table_path, items)
    manifest = json.loads((items / "_manifest.json").read_text())
    (items / "_manifest.json").write_text(json.dumps({**manifest, "tokenizer": None, "key_kind": "item"}))
    out = tmp_path / "out"
    assert _error(capsys, ["embed", "--table", str(items), "--input", input_path, "--output", str(out),
                           "--column", "text"], out) == (
        f"embedpipe embed: error: column 'text' of {input_path} is raw text but embedding table {items} records "
        "no tokenizer (key_kind 'item'); pass a column of keys"
    )
    # A tokenize output whose report.json says it was tokenized differently from the table's corpus.
    tokenized = tmp_path / "tokenized"
    (tokenized / "tokens").mkdir(parents=True)
    shutil.copy(input_path, tokenized / "tokens" / "part-0.parquet")
    other = {**dataclasses.asdict(TokenizerSettings()), "lowercase": False}
    (tokenized / "report.json").write_text(json.dumps({"kind": "tokenize", "tokenizer": other}))
    assert _error(capsys, ["embed", "--table", table_path, "--input", str(tokenized / "tokens"), "--output",
                           str(out)], out) == (
        f"embedpipe embed: error: embedding table {table_path} was trained with a different tokenizer than input "
        f"{tokenized / 'tokens'} was tokenized with (lowercase: table True, input False)"
    )
    stale = tmp_path / "stale"
    shutil.copytree(table_path, stale)
    (stale / "_manifest.json").write_text(json.dumps({**manifest, "rows": 0}))
    assert _error(capsys, ["embed", "--table", str(stale), "--input", input_path, "--output", str(out)], out) == (
        f"embedpipe embed: error: embedding table {stale} has 6 rows but its manifest says 0"
    )


@pytest.mark.parametrize("strategy", ["broadcast", "shuffle"])
def test_tables_breaking_the_format_fail_both_plans_and_write_nothing(spark, broken_tables, input_path, tmp_path,
                                                                      capsys, strategy):
    out = tmp_path / "out"
    for case, problem in (("nan", "has 1 vectors with NaN or Inf values, e.g. key 'b'"),
                          ("duplicate", "has duplicate keys (3 rows, 2 distinct keys), e.g. key 'a'")):
        table = broken_tables[case]
        assert _error(capsys, ["embed", "--table", table, "--input", input_path, "--output", str(out), "--strategy",
                               strategy], out) == f"embedpipe embed: error: embedding table {table} {problem}"


def test_sum_counts_repeats_and_weighted_sum_is_gone(spark, table_path, input_path, tmp_path, capsys):
    rows = _collect(plan_embed(spark, _config(table_path, input_path, combiner="sum")).result)
    vectors = dict(zip(KEYS, _vectors(), strict=True))
    np.testing.assert_allclose(rows["d0"][0], 2 * vectors["the"] + vectors["cat"] + vectors["sat"], rtol=1e-6)
    distinct = _collect(plan_embed(spark, _config(table_path, input_path, combiner="sum_distinct")).result)
    np.testing.assert_allclose(distinct["d0"][0], vectors["the"] + vectors["cat"] + vectors["sat"], rtol=1e-6)
    out = tmp_path / "out"
    assert _error(capsys, ["embed", "--table", table_path, "--input", input_path, "--output", str(out),
                           "--combiner", "weighted_sum"], out) == (
        "embedpipe embed: error: config key 'combiner': combiner 'weighted_sum' was removed; use 'sum' (it now "
        "counts every occurrence and weighs sparse values: the old weighted_sum)"
    )
