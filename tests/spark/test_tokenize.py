"""Tokenization, vocabulary ids and the tokenize job on text, CSV, JSON lines and Parquet inputs."""

from __future__ import annotations

import json

import pytest
from chispa import assert_df_equality
from pyspark.ml.linalg import SparseVector, VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from embedpipe.errors import InputError
from embedpipe.jobconfig import TokenizeConfig, TokenizerSettings
from embedpipe.text.pipeline import run_tokenize
from embedpipe.text.tokenizer import load_stop_words, tokenize_column, tokenize_text
from embedpipe.text.vocabulary import assign_ids, key_statistics, sequence_statistics, term_frequencies

BOW_SCHEMA = StructType(
    [
        StructField("doc_id", StringType()),
        StructField("features", VectorUDT()),
        StructField("indices", ArrayType(IntegerType())),
        StructField("values", ArrayType(DoubleType())),
    ]
)
VOCAB_SCHEMA = StructType(
    [
        StructField("token", StringType()),
        StructField("id", LongType()),
        StructField("count", LongType()),
        StructField("doc_freq", LongType()),
    ]
)


DEFAULT_SETTINGS = TokenizerSettings()


def spark_tokens(spark, texts, settings=DEFAULT_SETTINGS, stop_words=()):
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "i int, text string")
    rows = frame.select("i", tokenize_column(F.col("text"), settings, stop_words).alias("tokens")).collect()
    return [r["tokens"] for r in sorted(rows, key=lambda r: r["i"])]


# ------------------------------------------------------------------------------------- tokenizer

UNICODE_CASES = [
    ("서울은 한국의 수도입니다", ["서울은", "한국의", "수도입니다"]),
    ("Café résumé, CAFÉ!", ["café", "résumé", "café"]),
    ("Москва — столица России.", ["москва", "столица", "россии"]),
    ("Seoul(서울) has 9.7 million; ΑΘΗΝΑ too", ["seoul", "서울", "has", "9", "7", "million", "αθηνα", "too"]),
    ("don’t stop, l'homme 'quoted' x2 under_score", ["don't", "stop", "l'homme", "quoted", "x2", "under", "score"]),
    ("e\u0301te\u0301 (decomposed accents)", ["e\u0301te\u0301", "decomposed", "accents"]),
    ("我爱北京 天安门", ["我爱北京", "天安门"]),  # no word segmentation for CJK without spaces
    ("", []),
]


def test_unicode_tokenization(spark):
    texts = [text for text, _ in UNICODE_CASES] + [None]
    got = spark_tokens(spark, texts)
    assert got == [tokens for _, tokens in UNICODE_CASES] + [None]


def test_python_twin_matches_spark(spark):
    settings = TokenizerSettings(min_token_length=2, keep_numbers=False)
    stop = {"the", "in"}
    texts = [text for text, _ in UNICODE_CASES] + ["The 42 cats in 2024 and ٣٤ dogs"]
    assert spark_tokens(spark, texts, settings, stop) == [tokenize_text(t, settings, stop) for t in texts]


def test_stop_words_lengths_numbers_and_case(spark):
    english = load_stop_words(spark, "english")
    assert {"the", "and", "is"} <= english
    text = "The cat and THE dog is 42 years old, ok? 서울 a"
    assert spark_tokens(spark, [text], TokenizerSettings(stop_words="english"), english) == [
        ["cat", "dog", "42", "years", "old", "ok", "서울"]
    ]
    short = TokenizerSettings(min_token_length=3, max_token_length=4, keep_numbers=False)
    assert spark_tokens(spark, [text], short) == [["the", "cat", "and", "the", "dog", "old"]]
    # Without lowercasing, stop words still match case-insensitively (like StopWordsRemover).
    cased = TokenizerSettings(lowercase=False)
    assert spark_tokens(spark, [text], cased, english) == [["cat", "dog", "42", "years", "old", "ok", "서울"]]
    assert spark_tokens(spark, ["Keep Case"], cased) == [["Keep", "Case"]]


def test_stop_words_file(spark, tmp_path):
    path = tmp_path / "stop.txt"
    path.write_text("# my list\nCat\n\n서울은\ndon’t\n", encoding="utf-8")
    words = load_stop_words(spark, str(path))
    assert words == {"cat", "서울은", "don't"}
    assert spark_tokens(spark, ["the cat don't 서울은 가요"], stop_words=words) == [["the", "가요"]]
    assert load_stop_words(spark, "") == frozenset()
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(InputError, match=f"^stop words file not found: {missing} "):
        load_stop_words(spark, missing)


# ------------------------------------------------------------------------------------ vocabulary


def test_per_batch_statistics_equal_the_exploded_count(spark):
    """Counts and document frequencies summed over Arrow batches and partitions equal Spark SQL's count."""
    import random

    rng = random.Random(7)
    words = ["a", "b", "서울", "é", "don't", "zz"]
    rows = [(f"d{i}", [rng.choice(words) for _ in range(rng.randrange(0, 6))] or None) for i in range(60)]
    frame = spark.createDataFrame(rows, "row string, tokens array<string>").repartition(3)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")  # many batches per partition
    try:
        got = sequence_statistics(frame, sequence="tokens")
        expected = key_statistics(term_frequencies(frame, row="row", sequence="tokens"))
        assert_df_equality(got, expected, ignore_row_order=True)  # the same schema, nullability included
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)


def test_vocabulary_ids_break_ties_by_token(spark):
    stats = spark.createDataFrame(
        [("b", 3, 2), ("a", 3, 1), ("c", 5, 5), ("é", 2, 2), ("d", 2, 1), ("z", 1, 1)],
        "token string, count bigint, doc_freq bigint",
    ).repartition(3)
    expected = spark.createDataFrame(
        [("c", 0, 5, 5), ("a", 1, 3, 1), ("b", 2, 3, 2), ("d", 3, 2, 1), ("é", 4, 2, 2)], VOCAB_SCHEMA
    )
    assert_df_equality(assign_ids(stats, min_count=2, max_size=None), expected,
                       ignore_row_order=True, ignore_nullable=True)
    top = assign_ids(stats, min_count=1, max_size=3)
    assert sorted((r.token, r.id) for r in top.collect()) == [("a", 1), ("b", 2), ("c", 0)]
    assert assign_ids(stats, min_count=6, max_size=None).count() == 0


# ----------------------------------------------------------------------------- the job per format


def _read(spark, output, name):
    return spark.read.parquet(f"{output}/{name}")


def _report(output):
    with open(f"{output}/report.json", encoding="utf-8") as handle:
        return json.load(handle)


def test_csv_with_id_and_one_hot_columns(spark, tmp_path):
    csv = tmp_path / "docs.csv"
    csv.write_text(
        "id,kind,text\n"
        'd1,news,"Hello, World! hello"\n'
        "d2,blog,\n"
        "d3,news,Ünïcödé wörds\n"
        ",blog,orphan text\n"
        "d5,,the end\n"
        "d6,blog,The blog\n",
        encoding="utf-8",
    )
    output = str(tmp_path / "out")
    summary = run_tokenize(spark, TokenizeConfig(input=str(csv), output=output, id_column="id",
                                                 one_hot_column="kind", min_count=1))
    stages = summary.pop("stages")
    assert summary == {"output": output, "documents": 4, "tokens": 9, "vocab_size": 7}
    assert list(stages)[-2:] == ["commit", "total"]
    tokens = _read(spark, output, "tokens")
    assert sorted(map(tuple, tokens.collect())) == [
        ("d1", ["hello", "world", "hello"]), ("d3", ["ünïcödé", "wörds"]),
        ("d5", ["the", "end"]), ("d6", ["the", "blog"]),
    ]
    vocab = _read(spark, output, "vocab")
    assert [tuple(r) for r in vocab.collect()] == [  # one file, sorted by id
        ("hello", 0, 2, 1), ("the", 1, 2, 2), ("blog", 2, 1, 1), ("end", 3, 1, 1),
        ("world", 4, 1, 1), ("wörds", 5, 1, 1), ("ünïcödé", 6, 1, 1),
    ]
    onehot_schema = StructType([
        StructField("doc_id", StringType()), StructField("value", StringType()),
        StructField("index", IntegerType()), StructField("features", VectorUDT()),
    ])
    expected_onehot = spark.createDataFrame([
        ("d1", "news", 0, SparseVector(2, [0], [1.0])),
        ("d3", "news", 0, SparseVector(2, [0], [1.0])),
        ("d5", None, None, SparseVector(2, [], [])),
        ("d6", "blog", 1, SparseVector(2, [1], [1.0])),
    ], onehot_schema)
    assert_df_equality(_read(spark, output, "onehot"), expected_onehot, ignore_row_order=True, ignore_nullable=True)
    report = _report(output)
    assert report["format"] == "csv"
    assert report["counts"] == {
        "rows_read": 6, "null_documents": 1, "empty_documents": 0, "undecodable_lines": 0,
        "truncated_documents": 0, "malformed_rows": 0, "null_ids": 1, "duplicate_ids": 0,
    }
    assert report["one_hot"] == {"column": "kind", "values": 2, "null_values": 1}
    # where the time went, stage by stage in the order they ran (the commit follows the report, so it is logged)
    assert list(report["stages"]) == ["open", "read_tokenize", "count", "write_tokens", "encode_bow",
                                      "encode_one_hot", "total"]
    assert all(seconds >= 0 for seconds in report["stages"].values())


def test_json_lines_with_malformed_and_truncated_rows(spark, tmp_path):
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(
        '{"doc": "a", "body": "서울은 한국의 수도입니다"}\n'
        '{"doc": "b", "body": "서울은 아름답다"}\n'
        "not json at all\n"
        '{"doc": "c", "body": null}\n'
        '{"doc": 4, "body": "Café"}\n',
        encoding="utf-8",
    )
    output = str(tmp_path / "out")
    run_tokenize(spark, TokenizeConfig(input=str(jsonl), output=output, text_column="body", id_column="doc",
                                       min_count=2, max_document_chars=8))
    assert sorted(map(tuple, _read(spark, output, "tokens").collect())) == [
        ("4", ["café"]), ("a", ["서울은", "한국의"]), ("b", ["서울은", "아름답다"]),
    ]
    expected_bow = spark.createDataFrame([
        ("a", SparseVector(1, [0], [1.0]), [0], [1.0]),
        ("b", SparseVector(1, [0], [1.0]), [0], [1.0]),
        ("4", SparseVector(1, [], []), [], []),  # no vocabulary token: kept, empty
    ], BOW_SCHEMA)
    assert_df_equality(_read(spark, output, "bow"), expected_bow, ignore_row_order=True, ignore_nullable=True)
    report = _report(output)
    assert (report["format"], report["documents"], report["tokens"], report["vocab_size"]) == ("json", 3, 5, 1)
    assert report["counts"]["malformed_rows"] == 1
    assert report["counts"]["null_documents"] == 1
    assert report["counts"]["truncated_documents"] == 1


def test_parquet_with_duplicate_ids_and_max_vocab_size(spark, tmp_path):
    path = str(tmp_path / "docs.parquet")
    spark.createDataFrame(
        [(1, "a b"), (2, "b c"), (2, "c c"), (3, None), (4, "?!")], "id int, text string"
    ).write.parquet(path)
    output = str(tmp_path / "out")
    run_tokenize(spark, TokenizeConfig(input=path, output=output, id_column="id", min_count=1, max_vocab_size=2))
    assert [tuple(r) for r in _read(spark, output, "vocab").collect()] == [("c", 0, 3, 2), ("b", 1, 2, 2)]
    expected_bow = spark.createDataFrame([
        ("1", SparseVector(2, [1], [1.0]), [1], [1.0]),
        ("2", SparseVector(2, [0, 1], [1.0, 1.0]), [0, 1], [1.0, 1.0]),
        ("2", SparseVector(2, [0], [2.0]), [0], [2.0]),
    ], BOW_SCHEMA)
    assert_df_equality(_read(spark, output, "bow"), expected_bow, ignore_row_order=True, ignore_nullable=True)
    tokens = sorted(map(tuple, _read(spark, output, "tokens").collect()))
    assert tokens == [("1", ["a", "b"]), ("2", ["b", "c"]), ("2", ["c", "c"])]  # all tokens, not only vocab
    counts = _report(output)["counts"]
    assert (counts["duplicate_ids"], counts["null_documents"], counts["empty_documents"]) == (1, 1, 1)


def test_bag_of_words_without_shuffle_equals_the_join_plan(spark, tmp_path, monkeypatch):
    """Vocabularies up to BROADCAST_MAX_ROWS count in one Arrow pass; above, a join: same bow/ either way."""
    import random

    import embedpipe.text.pipeline as tokenize_pipeline

    rng = random.Random(5)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choices(words, weights=range(40, 0, -1), k=rng.randint(0, 30))) or "?" for _ in range(60)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def bow(output, max_rows):
        monkeypatch.setattr(tokenize_pipeline, "BROADCAST_MAX_ROWS", max_rows)
        run_tokenize(spark, TokenizeConfig(input=str(corpus), output=str(tmp_path / output), min_count=3))
        return _read(spark, str(tmp_path / output), "bow")

    assert_df_equality(bow("arrow", 1_000_000), bow("join", 1), ignore_row_order=True, ignore_nullable=True)
