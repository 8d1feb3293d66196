"""export / import of word2vec, GloVe and fastText vectors files, checked against gensim's own reader and writer."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.table import read_embedding_table

gensim_models = pytest.importorskip("gensim.models")
KeyedVectors = gensim_models.KeyedVectors

QUIET = ["--log-level", "ERROR"]
KEYS = ["서울", "the", "한국어", "café", "x"]


@pytest.fixture(scope="module")
def table(write_table, tmp_path_factory):
    """Five keys (Korean, accented), dim 3, values that need all 9 significant digits of a float32."""
    path = tmp_path_factory.mktemp("interop") / "table"
    vectors = np.random.default_rng(3).standard_normal((len(KEYS), 3)).astype(np.float32) * np.float32(1e-3)
    rows = [(key, i, 10 - i, [float(v) for v in vectors[i]]) for i, key in enumerate(KEYS)]
    write_table(path, rows, dim=3)
    return read_embedding_table(str(path))


def _refused(capsys, argv: list[str], output, message: str) -> None:
    capsys.readouterr()
    assert main([*argv, *QUIET]) == 2
    assert capsys.readouterr().err == f"embedpipe {argv[0]}: error: {message}\n"
    assert not output.exists()
    assert not [p.name for p in output.parent.iterdir() if "__embedpipe" in p.name]  # no temp or staging leftovers


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary", "fasttext-vec"])
def test_export_reads_back_in_gensim(spark, table, tmp_path, fmt):
    output = tmp_path / "vectors.out"
    assert main(["export", "--table", table.path, "--format", fmt, "--output", str(output), *QUIET]) == 0
    loaded = KeyedVectors.load_word2vec_format(str(output), binary=fmt == "word2vec-binary")
    assert loaded.index_to_key == KEYS  # id order
    if fmt == "word2vec-binary":
        np.testing.assert_array_equal(loaded.vectors, table.vectors)
    else:
        np.testing.assert_allclose(loaded.vectors, table.vectors, rtol=1e-6)
        np.testing.assert_array_equal(np.array([line.split()[1:] for line in output.read_text().splitlines()[1:]],
                                               dtype=np.float32), table.vectors)  # float32 exact, read directly


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_files_import_and_export_back_unchanged(spark, tmp_path, binary):
    kv = KeyedVectors(4)
    kv.add_vectors(["한국", "b", "café", "z"], np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32))
    source = tmp_path / "gensim.bin"
    kv.save_word2vec_format(str(source), binary=binary)
    fmt = "word2vec-binary" if binary else "word2vec"
    out = tmp_path / "imported"
    assert main(["import", "--input", str(source), "--format", fmt, "--output", str(out), *QUIET]) == 0
    imported = read_embedding_table(str(out))
    assert imported.keys == kv.index_to_key
    assert imported.ids.tolist() == [0, 1, 2, 3] and imported.counts.tolist() == [0, 0, 0, 0]
    np.testing.assert_array_equal(imported.vectors, kv.vectors)
    assert imported.manifest["method"] == "imported" and imported.manifest["rows"] == 4
    assert imported.manifest["params"]["format"] == fmt and imported.manifest["source"] == str(source)
    footer = spark.read.parquet(str(out)).schema["vector"].metadata["embedpipe.manifest"]  # as Spark's writer
    assert json.loads(footer)["method"] == "imported"

    back = tmp_path / "again"
    assert main(["export", "--table", str(out), "--format", fmt, "--output", str(back), *QUIET]) == 0
    again = tmp_path / "again-table"
    assert main(["import", "--input", str(back), "--format", fmt, "--output", str(again), *QUIET]) == 0
    round_trip = read_embedding_table(str(again))
    assert round_trip.keys == imported.keys and round_trip.ids.tolist() == imported.ids.tolist()
    np.testing.assert_array_equal(round_trip.vectors, imported.vectors)


def test_glove_and_gzipped_fasttext_files_import(spark, tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 -0.2\n서울 1e-3 2.5\n", encoding="utf-8")
    assert main(["import", "--input", str(glove), "--format", "glove", "--output", str(tmp_path / "g"), *QUIET]) == 0
    table = read_embedding_table(str(tmp_path / "g"))
    assert table.keys == ["the", "서울"] and table.manifest["params"]["header_rows"] is None
    np.testing.assert_array_equal(table.vectors, np.array([[0.1, -0.2], [1e-3, 2.5]], np.float32))

    vec = tmp_path / "wiki.vec.gz"  # fastText writes a space before every newline
    vec.write_bytes(gzip.compress("2 2\nthe 0.1 -0.2 \n서울 1e-3 2.5 \n".encode()))
    assert main(["import", "--input", str(vec), "--format", "fasttext-vec", "--output", str(tmp_path / "f"),
                 "--key-kind", "item", *QUIET]) == 0
    fasttext = read_embedding_table(str(tmp_path / "f"))
    assert fasttext.keys == table.keys and fasttext.manifest["key_kind"] == "item"
    np.testing.assert_array_equal(fasttext.vectors, table.vectors)


@pytest.mark.parametrize("fmt, key, what", [
    ("word2vec", "new york", "whitespace"),
    ("fasttext-vec", "a\u3000b", "whitespace"),  # ideographic space: Python's split() splits there
    ("word2vec-binary", "tab\tkey", "a space, tab or newline"),
])
def test_a_key_the_format_cannot_hold_is_refused(spark, write_table, tmp_path, capsys, fmt, key, what):
    path = tmp_path / "spaced"
    write_table(path, [("a", 0, 2, [1.0, 0.0]), (key, 1, 1, [0.0, 1.0])], dim=2)
    output = tmp_path / "out.txt"
    _refused(capsys, ["export", "--table", str(path), "--format", fmt, "--output", str(output)], output,
             f"embedding table {path}: key {key!r} contains {what}, which the {fmt} format cannot hold (a reader "
             "would split the key there); export to a format that can, or rename the key")


def test_export_refuses_a_broken_table(spark, broken_tables, tmp_path, capsys):
    output = tmp_path / "out.txt"
    path = broken_tables["nan"]
    _refused(capsys, ["export", "--table", path, "--format", "word2vec", "--output", str(output)], output,
             f"embedding table {path} has 1 vectors with NaN or Inf values, e.g. key 'b'")


BAD_TEXT = {
    "more rows": ("1 2\na 1 2\nb 3 4\n", " has more rows than its header states (1)"),
    "fewer rows": ("3 2\na 1 2\nb 3 4\n", " has 2 rows but its header states 3 (truncated?)"),
    "short row": ("2 2\na 1 2\nb 3\n", ": line 3 (key 'b') has 1 values, expected 2"),
    "not a number": ("2 2\na 1 2\nb 3 x4\n", ": line 3 (key 'b'): 'x4' is not a number"),
    "nan": ("2 2\na 1 2\nb nan 4\n", ": line 3 (key 'b') has a NaN or Inf value"),
    "inf": ("2 2\na 1 2\nb 3 -inf\n", ": line 3 (key 'b') has a NaN or Inf value"),
    "duplicate": ("3 2\na 1 2\nb 3 4\na 5 6\n", " has duplicate keys (3 rows, 2 distinct keys), e.g. key 'a'"),
    "empty": ("", " is empty"),
    "no header": ("a 1 2\nb 3 4\n", ": line 1 is not a '<rows> <dim>' header for format word2vec; a file without a "
                  "header (GloVe) imports with format glove"),
}


@pytest.mark.parametrize("case", list(BAD_TEXT))
def test_a_bad_text_file_is_refused_and_nothing_written(spark, tmp_path, capsys, case):
    text, message = BAD_TEXT[case]
    source = tmp_path / "bad.txt"
    source.write_text(text)
    output = tmp_path / "table"
    _refused(capsys, ["import", "--input", str(source), "--format", "word2vec", "--output", str(output)], output,
             f"vectors file {source}{message}")


def test_a_truncated_or_overlong_binary_file_is_refused(spark, tmp_path, capsys):
    kv = KeyedVectors(3)
    kv.add_vectors(["a", "b"], np.ones((2, 3), np.float32))
    kv.save_word2vec_format(str(tmp_path / "good.bin"), binary=True)
    data = (tmp_path / "good.bin").read_bytes()
    output = tmp_path / "table"
    for name, content, message in (
        ("cut.bin", data[:-1], "is truncated: row 2 of the 2 its header states is incomplete"),
        ("long.bin", data + b"c " + bytes(12), "has more data after the 2 rows its header states"),
    ):
        (tmp_path / name).write_bytes(content)
        _refused(capsys, ["import", "--input", str(tmp_path / name), "--format", "word2vec-binary", "--output",
                          str(output)], output, f"vectors file {tmp_path / name} {message}")
