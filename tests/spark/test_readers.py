"""Input readers: format detection, missing inputs, and row numbering independent of file splits."""

from __future__ import annotations

import contextlib

import pytest

from embedpipe.errors import InputError, SchemaError
from embedpipe.jobconfig import INPUT_FORMATS, LOG_FORMATS
from embedpipe.readers import (
    FILE,
    LINE,
    ROW,
    data_columns,
    file_format,
    read_input,
    require_columns,
    resolve_input,
)


@pytest.mark.parametrize(
    ("name", "logs", "expected"),
    [
        ("corpus.txt", False, "text"),
        ("corpus.TEXT", False, "text"),
        ("part-00000", False, "text"),
        ("part-00000.gz", False, "text"),
        ("docs.jsonl", False, "json"),
        ("docs.json.gz", False, "json"),
        ("part-0.snappy.parquet", False, "parquet"),
        ("table.csv", False, "csv"),
        ("table.tsv", False, "tsv"),
        ("u.data", True, "udata"),
        ("u.data", False, None),
        ("ratings.csv", True, "csv"),
        ("notes.md", False, None),
        (".hidden", False, "text"),
    ],
)
def test_file_format_by_name(name, logs, expected):
    assert file_format(name, logs=logs) == expected


@contextlib.contextmanager
def _conf(spark, key, value):
    old = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if old is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, old)


def test_missing_input_names_the_path(spark, tmp_path):
    path = str(tmp_path / "nope.txt")
    with pytest.raises(InputError) as info:
        resolve_input(spark, path, "auto", allowed=INPUT_FORMATS)
    assert str(info.value) == f"input not found: {path}"


def test_unknown_scheme_is_an_input_error(spark):
    with pytest.raises(InputError) as info:
        resolve_input(spark, "nosuchfs://bucket/corpus.txt", "auto", allowed=INPUT_FORMATS)
    assert str(info.value) == 'cannot access input nosuchfs://bucket/corpus.txt: No FileSystem for scheme "nosuchfs"'


def test_directory_format_from_its_files(spark, tmp_path):
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "a.tsv").write_text("x\ty\n1\t2\n")
    (tmp_path / "csvs" / "_SUCCESS").write_text("")
    source = resolve_input(spark, str(tmp_path / "csvs"), "auto", allowed=INPUT_FORMATS)
    assert (source.format, source.delimiter, source.is_dir) == ("csv", "\t", True)
    # An explicit delimiter wins over the .tsv default.
    semicolon = resolve_input(spark, str(tmp_path / "csvs"), "auto", allowed=INPUT_FORMATS, csv_delimiter=";")
    assert semicolon.delimiter == ";"

    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text("x\n")
    (tmp_path / "mixed" / "b.json").write_text("{}\n")
    with pytest.raises(InputError, match=r"mixes formats \(csv, json\); set format"):
        resolve_input(spark, str(tmp_path / "mixed"), "auto", allowed=INPUT_FORMATS)

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no data files"):
        resolve_input(spark, str(tmp_path / "empty"), "auto", allowed=INPUT_FORMATS)

    (tmp_path / "notes.md").write_text("hello\n")
    with pytest.raises(InputError, match=r"from the file name 'notes.md'; set format to one of text, parquet"):
        resolve_input(spark, str(tmp_path / "notes.md"), "auto", allowed=INPUT_FORMATS)
    assert resolve_input(spark, str(tmp_path / "notes.md"), "text", allowed=INPUT_FORMATS).format == "text"


def test_movielens_names_only_for_logs(spark, tmp_path):
    udata = tmp_path / "u.data"
    udata.write_text("1\t2\t5\t100\n")
    assert resolve_input(spark, str(udata), "auto", allowed=LOG_FORMATS).format == "udata"
    with pytest.raises(InputError, match="cannot detect the format"):
        resolve_input(spark, str(udata), "auto", allowed=INPUT_FORMATS)


def test_text_lines_are_numbered_per_file_whatever_the_splits(spark, tmp_path):
    corpus = tmp_path / "corpus dir"
    (corpus / "sub").mkdir(parents=True)
    first = [f"line number {i} of the first file" for i in range(40)]
    (corpus / "a b+c.txt").write_text("\n".join(first) + "\n", encoding="utf-8")
    (corpus / "sub" / "z.txt").write_text("한국어 한 줄\n\nlast\n", encoding="utf-8")
    source = resolve_input(spark, str(corpus), "auto", allowed=INPUT_FORMATS)

    def rows():
        frame = read_input(spark, source)
        assert data_columns(frame) == ["value"]
        return sorted(tuple(r) for r in frame.select(ROW, FILE, LINE, "value").collect())

    with _conf(spark, "spark.sql.files.maxPartitionBytes", "300"):  # 5 splits of the first file
        small_splits = rows()
    expected = [(i, "a b+c.txt", i, text) for i, text in enumerate(first)]
    expected += [(40, "sub/z.txt", 0, "한국어 한 줄"), (41, "sub/z.txt", 1, ""), (42, "sub/z.txt", 2, "last")]
    assert small_splits == expected
    assert rows() == expected  # one split per file: same numbering


def test_parquet_rows_are_numbered_in_path_order(spark, tmp_path):
    path = str(tmp_path / "docs.parquet")
    frame = spark.createDataFrame([(f"doc {i}",) for i in range(10)], "text string")
    frame.coalesce(1).write.parquet(f"{path}/part=b")  # partition directories, read in path order
    frame.limit(3).coalesce(1).write.parquet(f"{path}/part=a")
    source = resolve_input(spark, path, "auto", allowed=INPUT_FORMATS)
    assert source.format == "parquet"
    read = read_input(spark, source)
    got = sorted((r[ROW], r["part"], r["text"]) for r in read.collect())
    assert [g[0] for g in got] == list(range(13))
    assert [g[1] for g in got] == ["a"] * 3 + ["b"] * 10


def test_require_columns_lists_missing_and_present(spark, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("id,body\n1,hello\n")
    source = resolve_input(spark, str(csv), "auto", allowed=INPUT_FORMATS)
    frame = read_input(spark, source)
    with pytest.raises(SchemaError) as info:
        require_columns(frame, {"text_column": "text", "id_column": "id", "one_hot_column": "kind"}, source=source)
    assert str(info.value) == (
        f"input {csv} lacks required columns (missing: text (text_column), kind (one_hot_column); present: id, body)"
    )


def test_unreadable_parquet_is_an_input_error(spark, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    source = resolve_input(spark, str(bad), "auto", allowed=INPUT_FORMATS)
    with pytest.raises(InputError, match=rf"^cannot read {bad} as parquet: "):
        read_input(spark, source).collect()
