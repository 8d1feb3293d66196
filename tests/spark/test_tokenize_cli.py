"""``embedpipe tokenize`` end to end through the CLI: outputs by hand, idempotence, bad inputs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from chispa import assert_df_equality
from pyspark.ml.linalg import SparseVector, VectorUDT
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType

from embedpipe.cli import job_main, main
from embedpipe.jobconfig import TokenizeConfig

QUIET = ["--log-level", "ERROR"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two text files: Korean, accents, a blank line and a line with an invalid UTF-8 byte."""
    root = tmp_path_factory.mktemp("corpus") / "texts"
    root.mkdir()
    (root / "a.txt").write_text(
        "the cat sat on the mat\n서울은 한국의 수도입니다\nCafé résumé, CAFÉ!\n\nthe dog sat\n", encoding="utf-8"
    )
    (root / "b.txt").write_bytes(b"cat dog cat\n" + b"bad \xff bytes\n")
    return root


def _rows(spark, path):
    return sorted(map(tuple, spark.read.parquet(path).collect()))


def test_tokenize_cli_twice_gives_the_hand_computed_output(spark, corpus, tmp_path):
    output = tmp_path / "tokens-out"
    argv = ["tokenize", "--input", str(corpus), "--output", str(output), "--set", "min_count=2", *QUIET]
    assert main(argv) == 0
    first = {name: _rows(spark, f"{output}/{name}") for name in ("tokens", "vocab")}
    report = json.loads((output / "report.json").read_text())
    assert main(argv) == 0  # idempotent: replaces the output with the same content
    assert {name: _rows(spark, f"{output}/{name}") for name in ("tokens", "vocab")} == first
    rerun = json.loads((output / "report.json").read_text())
    stages = report.pop("stages")
    assert rerun.pop("stages").keys() == stages.keys()  # seconds differ run to run; everything else must not
    assert rerun == report
    assert list(stages) == ["open", "read_tokenize", "count", "write_tokens", "encode_bow", "total"]
    assert not [p.name for p in tmp_path.iterdir() if p.name != "tokens-out"]  # no staging leftovers

    assert first["tokens"] == [
        ("a.txt:1", ["the", "cat", "sat", "on", "the", "mat"]),
        ("a.txt:2", ["서울은", "한국의", "수도입니다"]),
        ("a.txt:3", ["café", "résumé", "café"]),
        ("a.txt:5", ["the", "dog", "sat"]),
        ("b.txt:1", ["cat", "dog", "cat"]),
        ("b.txt:2", ["bad", "bytes"]),
    ]
    # count desc, then token asc: cat/the (3), café/dog/sat (2)
    assert sorted(first["vocab"], key=lambda r: r[1]) == [
        ("cat", 0, 3, 2), ("the", 1, 3, 2), ("café", 2, 2, 1), ("dog", 3, 2, 2), ("sat", 4, 2, 2),
    ]
    bow_schema = StructType([
        StructField("doc_id", StringType()), StructField("features", VectorUDT()),
        StructField("indices", ArrayType(IntegerType())), StructField("values", ArrayType(DoubleType())),
    ])
    expected = [  # doc, {vocab id: count}, worked out from the tokens above
        ("a.txt:1", {0: 1.0, 1: 2.0, 4: 1.0}),
        ("a.txt:2", {}),
        ("a.txt:3", {2: 2.0}),
        ("a.txt:5", {1: 1.0, 3: 1.0, 4: 1.0}),
        ("b.txt:1", {0: 2.0, 3: 1.0}),
        ("b.txt:2", {}),
    ]
    expected_bow = spark.createDataFrame(
        [(doc, SparseVector(5, c), sorted(c), [c[i] for i in sorted(c)]) for doc, c in expected],
        bow_schema,
    )
    assert_df_equality(spark.read.parquet(f"{output}/bow"), expected_bow, ignore_row_order=True, ignore_nullable=True)
    assert report == {
        "kind": "tokenize",
        "input": str(corpus),
        "format": "text",
        "text_column": None,
        "id_column": None,
        "tokenizer": {"lowercase": True, "min_token_length": 1, "max_token_length": 100, "stop_words": "",
                      "keep_numbers": True, "tokenizer": "regex", "keep_particles": False},
        "min_count": 2,
        "max_vocab_size": None,
        "max_document_chars": 1_000_000,
        "documents": 6,
        "counts": {"rows_read": 7, "null_documents": 0, "empty_documents": 1, "undecodable_lines": 1,
                   "truncated_documents": 0, "malformed_rows": 0, "null_ids": 0, "duplicate_ids": 0},
        "tokens": 20,
        "vocab_size": 5,
        "one_hot": None,
        "labels": None,
    }


def test_tokenize_job_entry_point(spark, corpus, tmp_path):
    output = tmp_path / "out"
    assert job_main("tokenize", ["--input", str(corpus / "a.txt"), "--output", str(output), "--min-count", "1",
                                 "--stop-words", "english", "--min-token-length", "3", *QUIET]) == 0
    assert _rows(spark, f"{output}/tokens") == [
        ("a.txt:1", ["cat", "sat", "mat"]), ("a.txt:2", ["서울은", "한국의", "수도입니다"]),
        ("a.txt:3", ["café", "résumé", "café"]), ("a.txt:5", ["dog", "sat"]),
    ]


def _fails(capsys, argv, output, message):
    code = main(argv + ["--output", str(output), *QUIET])
    assert code == 2
    assert capsys.readouterr().err == f"embedpipe tokenize: error: {message}\n"
    assert not output.exists()


def test_missing_input(spark, capsys, tmp_path):
    missing = tmp_path / "missing.txt"
    _fails(capsys, ["tokenize", "--input", str(missing)], tmp_path / "out", f"input not found: {missing}")


def test_missing_column(spark, capsys, tmp_path):
    csv = tmp_path / "docs.csv"
    csv.write_text("id,body\n1,hello\n")
    _fails(capsys, ["tokenize", "--input", str(csv), "--id-column", "id"], tmp_path / "out",
           f"input {csv} lacks required columns (missing: text (text_column); present: id, body)")


def test_empty_corpus(spark, capsys, tmp_path):
    text = tmp_path / "empty.txt"
    text.write_text("\n  \n...!\n")
    _fails(capsys, ["tokenize", "--input", str(text)], tmp_path / "out",
           f"no document in {text} has a token (3 rows read: 0 NULL, 3 without tokens)")


def test_empty_vocabulary(spark, capsys, tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("one two two\n")
    _fails(capsys, ["tokenize", "--input", str(text)], tmp_path / "out",
           f"empty vocabulary: no token of {text} occurs at least min_count=5 times; "
           "the most frequent token, 'two', occurs 2 times")


def test_unknown_config_key(spark, capsys, tmp_path, corpus):
    known = ", ".join(sorted(f.name for f in dataclasses.fields(TokenizeConfig)))
    _fails(capsys, ["tokenize", "--input", str(corpus), "--set", "nope=1"], tmp_path / "out",
           f"unknown config key 'nope' (known keys: {known})")


def test_bad_settings(spark, capsys, tmp_path, corpus):
    _fails(capsys, ["tokenize", "--input", str(corpus), "--set", "max_token_length=2", "--min-token-length", "3"],
           tmp_path / "out", "config key 'max_token_length' must be >= min_token_length")
    _fails(capsys, ["tokenize", "--input", str(corpus), "--id-column", "id"], tmp_path / "out",
           f"config key 'id_column' needs a tabular input; {corpus} is plain text "
           "(documents are identified as <file>:<line>)")
    stop = tmp_path / "stop.txt"
    _fails(capsys, ["tokenize", "--input", str(corpus), "--stop-words", str(stop)], tmp_path / "out",
           f"stop words file not found: {stop} (stop_words must be empty, a file, or one of danish, dutch, english, "
           "finnish, french, german, hungarian, italian, norwegian, portuguese, russian, spanish, swedish, turkish)")


def test_failure_keeps_the_previous_output(spark, capsys, tmp_path, corpus):
    output = tmp_path / "out"
    output.mkdir()
    (output / "report.json").write_text("previous run\n")
    assert main(["tokenize", "--input", str(corpus), "--output", str(output), "--min-count", "99", *QUIET]) == 2
    assert "empty vocabulary" in capsys.readouterr().err
    assert sorted(p.name for p in output.iterdir()) == ["report.json"]
    assert (output / "report.json").read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left behind
