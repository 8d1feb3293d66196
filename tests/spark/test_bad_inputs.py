"""Bad input is refused with one line, or counted in the report, and never half-written.

Already covered elsewhere (not repeated here): a CSV without the text column
(``test_tokenize_cli.test_missing_column``), a log without its user/item/time columns and a
non-numeric rating counted as ``bad_weight`` (``test_histories``), NULL documents and malformed
JSON lines (``test_tokenize``), a lone corrupt Parquet file (``test_readers``), unknown ``--set``
keys (``test_tokenize_cli``, ``test_histories``, ``test_train``), NaN/Inf/duplicate/wrong-dimension
tables (``test_table``).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.cli import main
from embedpipe.errors import OutputError, TableError
from embedpipe.jobconfig import TokenizeConfig
from embedpipe.table import read_manifest

QUIET = ["--log-level", "ERROR"]


def _refused(capsys, argv: list[str], output, message: str, *, code: int = 2) -> None:
    """The job exits with ``code``, prints exactly one error line and writes nothing at ``output``."""
    capsys.readouterr()
    assert main([*argv, "--output", str(output), *QUIET]) == code
    assert capsys.readouterr().err == f"embedpipe {argv[0]}: error: {message}\n"
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(output.name + ".")], "no staging left"


def test_undecodable_empty_and_10mb_lines_are_counted_twice_the_same(spark, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long_line = b"abcd " * 2_100_000  # 10.5 MB on one line
    (corpus / "a.txt").write_bytes(
        "good words 서울 한국\n\n   ...  \n".encode() + b"bad \xff\xfe bytes " + "서울\n".encode() + long_line + b"\n"
    )
    (corpus / "b.txt").write_text("한국 good\n", encoding="utf-8")
    output = tmp_path / "out"
    argv = ["tokenize", "--input", str(corpus), "--output", str(output), "--min-count", "1",
            "--max-document-chars", "1000", *QUIET]
    assert main(argv) == 0
    tokens = dict(spark.read.parquet(str(output / "tokens")).collect())
    report = json.loads((output / "report.json").read_text())
    assert main(argv) == 0
    assert dict(spark.read.parquet(str(output / "tokens")).collect()) == tokens
    rerun = json.loads((output / "report.json").read_text())
    assert rerun.pop("stages").keys() == report.pop("stages").keys()  # seconds differ run to run; all else may not
    assert rerun == report
    assert sorted(os.listdir(tmp_path)) == ["corpus", "out"]

    # Bad bytes become U+FFFD (never part of a token) and the line is counted; the 10 MB line keeps
    # its first 1,000 characters (200 tokens) and is counted; blank and token-less lines are counted.
    assert tokens == {
        "a.txt:1": ["good", "words", "서울", "한국"],
        "a.txt:4": ["bad", "bytes", "서울"],
        "a.txt:5": ["abcd"] * 200,
        "b.txt:1": ["한국", "good"],
    }
    assert report["counts"] == {
        "rows_read": 6, "null_documents": 0, "empty_documents": 2, "undecodable_lines": 1,
        "truncated_documents": 1, "malformed_rows": 0, "null_ids": 0, "duplicate_ids": 0,
    }
    assert (report["documents"], report["tokens"]) == (4, 209)


def test_binary_file_is_refused_naming_its_first_line(spark, capsys, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the cat sat\n", encoding="utf-8")
    data = gzip.compress(b"the cat sat on the mat\n" * 200, mtime=0)  # a .gz renamed .txt
    (corpus / "z.txt").write_bytes(data)
    lines = re.split(rb"\r\n|\r|\n", data)  # Hadoop's line reader ends lines at \n, \r and \r\n
    binary = [number for number, line in enumerate(lines, 1) if b"\0" in line]
    assert binary
    _refused(capsys, ["tokenize", "--input", str(corpus), "--min-count", "1"], tmp_path / "out",
             f"input is not text: {len(binary)} documents contain NUL bytes (binary data), the first is "
             f"z.txt:{binary[0]}; remove binary files from the input")


def test_empty_directory(spark, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    for job in ("tokenize", "histories"):
        _refused(capsys, [job, "--input", str(empty)], out,
                 f"input directory {empty} holds no data files; cannot detect its format")
    _refused(capsys, ["tokenize", "--input", str(empty), "--format", "text"], out,
             f"no document in {empty} has a token (0 rows read: 0 NULL, 0 without tokens)")


def test_corrupt_parquet_part_among_good_ones_names_the_file(spark, capsys, tmp_path):
    # Spark plans with one footer (part-0, good); the corrupt part fails on the first scan, which must
    # still be one line naming the file, not a Java stack trace.
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"text": ["hello world"], "user": ["u1"], "item": ["i1"]}), data / "part-0.parquet")
    (data / "part-1.parquet").write_bytes(b"PAR1 this is not a parquet file, oops")
    expected = (f"cannot read {data} as parquet: file:{data}/part-1.parquet is not a Parquet file. "
                "Expected magic number at tail, but found [111, 111, 112, 115]")
    _refused(capsys, ["tokenize", "--input", str(data), "--min-count", "1"], tmp_path / "out", expected)
    _refused(capsys, ["histories", "--input", str(data)], tmp_path / "out", expected)


def test_config_file_with_unknown_key_or_negative_dimension(spark, capsys, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\n", encoding="utf-8")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[tokenize]\nmin_count = 1\nmin_cuont = 2\n", encoding="utf-8")
    known = ", ".join(sorted(f.name for f in dataclasses.fields(TokenizeConfig)))
    _refused(capsys, ["tokenize", "--config", str(unknown), "--input", str(corpus)], tmp_path / "out",
             f"unknown config key 'min_cuont' (known keys: {known})")
    negative = tmp_path / "negative.toml"
    negative.write_text("[train]\nmethod = \"pca\"\ndim = -3\n", encoding="utf-8")
    _refused(capsys, ["train", "--config", str(negative), "--input", str(tmp_path)], tmp_path / "table",
             "config key 'dim' must be >= 1, got -3")
    _refused(capsys, ["train", "--input", str(tmp_path), "--set", "dim=-3"], tmp_path / "table",
             "config key 'dim' must be >= 1, got -3")


# ----------------------------------------------------------------------------- tables checked before commit


GOOD = [("a", 0, 3, [1.0, 0.0]), ("서울", 1, 2, [0.0, 1.0])]


@pytest.mark.parametrize(
    ("rows", "kwargs", "error", "message"),
    [
        ([("a", 0, 1, [1.0, 2.0]), (None, 1, 1, [1.0, 2.0])], {}, TableError, "embedding table has 1 NULL keys"),
        (GOOD, {"expected_rows": 3}, TableError, "table has 2 rows, expected 3"),
    ],
)
def test_table_checks_keep_the_previous_table(write_table, tmp_path, rows, kwargs, error, message):
    table = tmp_path / "table"
    write_table(table, GOOD, dim=2)
    manifest = read_manifest(str(table))
    files = sorted(os.listdir(table))
    with pytest.raises(error) as caught:
        write_table(table, rows, dim=2, **kwargs)
    assert str(caught.value) == message
    assert read_manifest(str(table)) == manifest and sorted(os.listdir(table)) == files
    assert os.listdir(tmp_path) == ["table"]


def test_table_never_replaces_a_directory_that_is_not_a_table(write_table, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine\n")
    with pytest.raises(OutputError) as caught:
        write_table(notes, GOOD, dim=2)
    assert str(caught.value) == (f"output path {notes} is a non-empty directory without _manifest.json "
                                 "(not an earlier output); refusing to replace it")
    with pytest.raises(OutputError, match="contains the job's input"):
        write_table(tmp_path, GOOD, dim=2, inputs=[str(notes / "todo.txt")])
    assert os.listdir(notes) == ["todo.txt"] and os.listdir(tmp_path) == ["notes"]
