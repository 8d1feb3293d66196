"""``oov = subwords`` in embed, neighbors and evaluate: unseen words get the vector ``vectors_of`` composes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.cli import main
from embedpipe.subwords import HASH_NAME, ngram_buckets
from embedpipe.table import read_embedding_table

WORDS = ["walking", "talking", "walked", "talked", "cooking", "cooked", "jumped", "played"]
DIM = 6
SCHEME = {"minn": 2, "maxn": 3, "buckets": 100_000, "hash": HASH_NAME, "jamo": False, "table": "_subwords"}


@pytest.fixture(scope="module")
def fasttext_table(write_table, tmp_path_factory):
    """A hand-made fasttext table: random word vectors and bucket rows for the vocabulary's n-grams."""
    root = tmp_path_factory.mktemp("oov_subwords")
    rng = np.random.default_rng(11)
    used = sorted({int(b) for w in WORDS for b in ngram_buckets(w, 2, 3, 100_000)})
    write_table(root / "table", [(w, i, 100 - i, rng.normal(size=DIM).tolist()) for i, w in enumerate(WORDS)],
                dim=DIM, method="fasttext", params={"subwords": SCHEME})
    write_table(root / "table" / "_subwords", [(str(b), b, 1, rng.normal(size=DIM).tolist()) for b in used],
                dim=DIM, method="fasttext", params={"subwords": SCHEME}, key_kind="subword bucket")
    write_table(root / "plain", [(w, i, 1, rng.normal(size=DIM).tolist()) for i, w in enumerate(WORDS)], dim=DIM)
    return root


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    path = tmp_path_factory.mktemp("oov_docs") / "docs.parquet"
    pq.write_table(pa.table({
        "doc": ["d0", "d1", "d2", "d3"],
        "tokens": pa.array([["walking", "jumping"], ["zzz"], ["cooked", "talks", "walking"], ["qq", "cooks"]],
                           pa.list_(pa.string())),
    }), path)
    return path


def _vectors(path) -> dict[str, np.ndarray | None]:
    table = pq.read_table(str(path)).to_pydict()
    return {d: None if v is None else np.asarray(v, np.float32) for d, v in zip(table["doc"], table["vector"],
                                                                                   strict=True)}


def _embed(fasttext_table, docs, out, strategy: str) -> dict[str, np.ndarray | None]:
    assert main(["embed", "--table", str(fasttext_table / "table"), "--input", str(docs), "--output", str(out),
                 "--oov", "subwords", "--strategy", strategy]) == 0
    table = read_embedding_table(str(fasttext_table / "table"))
    got = _vectors(out)
    for doc, tokens in {"d0": ["walking", "jumping"], "d2": ["cooked", "talks", "walking"], "d3": ["cooks"]}.items():
        np.testing.assert_allclose(got[doc], table.vectors_of(tokens, oov="subwords").mean(axis=0), rtol=1e-5,
                                   atol=1e-6)
    assert got["d1"] is None  # no n-gram of "zzz" was trained: still unseen, skipped
    found = dict(zip(*pq.read_table(str(out), columns=["doc", "tokens_found"]).to_pydict().values(), strict=True))
    assert found == {"d0": 2, "d1": 0, "d2": 3, "d3": 1}
    return got


def test_embed_composes_unseen_tokens_as_vectors_of_does(spark, fasttext_table, docs, tmp_path):
    _embed(fasttext_table, docs, tmp_path / "out", "broadcast")


@pytest.mark.slow
def test_embed_shuffle_plan_joins_buckets_and_matches_broadcast_bit_for_bit(spark, fasttext_table, docs, tmp_path):
    broadcast = _embed(fasttext_table, docs, tmp_path / "broadcast", "broadcast")
    shuffle = _embed(fasttext_table, docs, tmp_path / "shuffle", "shuffle")
    for doc, vector in broadcast.items():  # the same summation order
        if vector is not None:
            np.testing.assert_array_equal(vector, shuffle[doc])


@pytest.mark.parametrize("job", ["embed", "neighbors", "evaluate"])
def test_subwords_on_a_table_without_them_write_nothing(spark, capsys, fasttext_table, docs, tmp_path, job):
    plain = fasttext_table / "plain"
    out = tmp_path / "out"
    (tmp_path / "sim.tsv").write_text("walks\twalking\t9\n")
    extra = {"embed": ["--input", str(docs)], "neighbors": ["--queries", "walks"],
             "evaluate": ["--similarity", str(tmp_path / "sim.tsv"), "--analogies", ""]}[job]
    capsys.readouterr()
    assert main([job, "--table", str(plain), "--output", str(out), *extra, "--oov", "subwords",
                 "--log-level", "ERROR"]) == 2
    assert capsys.readouterr().err == (f"embedpipe {job}: error: config key 'oov' is subwords but embedding table "
                                       f"{plain} has no subword vectors (train it with --method fasttext)\n")
    assert not out.exists()


def test_neighbors_of_unseen_queries_and_analogy_words(spark, fasttext_table, tmp_path):
    path = fasttext_table / "table"
    table = read_embedding_table(str(path))
    out = tmp_path / "nn"
    assert main(["neighbors", "--table", str(path), "--output", str(out), "--queries", "walks,cooking",
                 "--oov", "subwords", "--k", "3", "--analogies", "walks walking cooks",
                 "--analogy-output", str(tmp_path / "an")]) == 0
    rows = pq.read_table(str(out)).to_pylist()
    composed = table.vectors_of(["walks"], oov="subwords")[0]
    cosines = table.unit @ (composed / np.linalg.norm(composed))
    expected = [table.keys[i] for i in np.argsort(-cosines, kind="stable")[:3]]
    assert [r["neighbor"] for r in sorted(rows, key=lambda r: r["rank"]) if r["key"] == "walks"] == expected
    assert [r["rank"] for r in rows if r["key"] == "cooking"] == [1, 2, 3]
    a, b, c = table.vectors_of(["walks", "walking", "cooks"], oov="subwords")
    unit = [v / np.linalg.norm(v) for v in (a, b, c)]
    target = unit[0] - unit[1] + unit[2]  # a - b + c
    scores = table.unit @ target
    scores[[table.row("walking")]] = -np.inf
    answer = pq.read_table(str(tmp_path / "an")).to_pylist()[0]
    assert answer["answer"] == table.keys[int(np.argmax(scores))]


def test_evaluate_scores_pairs_with_unseen_words(spark, fasttext_table, tmp_path):
    path = fasttext_table / "table"
    table = read_embedding_table(str(path))
    sims = tmp_path / "sim.tsv"
    sims.write_text("walks\twalking\t9\ncooks\tjumped\t1\nwalked\ttalked\t5\nzzz\twalked\t3\n")
    reports = {}
    for oov in ("skip", "subwords"):
        out = tmp_path / oov
        assert main(["evaluate", "--table", str(path), "--output", str(out), "--similarity", str(sims),
                     "--analogies", "", "--oov", oov]) == 0
        reports[oov] = json.loads((out / "report.json").read_text())["similarity"][0]
    assert reports["skip"]["pairs_found"] == 1 and reports["subwords"]["pairs_found"] == 3  # zzz: no n-gram
    vectors = table.vectors_of(["walks", "walking", "cooks", "jumped", "walked", "talked"], oov="subwords")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = [float(unit[0] @ unit[1]), float(unit[2] @ unit[3]), float(unit[4] @ unit[5])]
    ranks = np.argsort(np.argsort(cosines))
    expected = float(np.corrcoef(ranks, [2, 0, 1])[0, 1])  # the gold scores 9, 1, 5 rank as 2, 0, 1
    assert reports["subwords"]["spearman"] == pytest.approx(expected)
