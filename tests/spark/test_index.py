"""``embedpipe index`` and ``neighbors --method index``: agree with exact search, stay out of the rows,
refuse stale/corrupt/missing indexes with one line, and the Python API uses a fresh index."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("faiss", reason="the ANN index needs the 'index' extra (faiss-cpu)")

from embedpipe.cli import main  # noqa: E402
from embedpipe.errors import InputError  # noqa: E402
from embedpipe.index.store import AnnIndex, check_index, load_index  # noqa: E402
from embedpipe.lookup import open_table  # noqa: E402

N, DIM, K = 400, 16, 5


def _vectors(seed: int = 3) -> tuple[list[str], np.ndarray]:
    """Clustered vectors (40 clusters of about 10 keys), as trained tables are."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, DIM))
    vectors = (centers[rng.integers(0, 40, N)] + 0.5 * rng.normal(size=(N, DIM))).astype(np.float32)
    return [f"k{i:03d}" for i in range(N)], vectors


def _write(write_table, path, seed: int = 3) -> str:
    keys, vectors = _vectors(seed)
    write_table(path, [(k, i, N - i, v.tolist()) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))],
                dim=DIM, key_kind="item")
    return str(path)


def _exact(seed: int = 3) -> dict[str, list[tuple[str, float]]]:
    keys, vectors = _vectors(seed)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return {keys[i]: [(keys[j], float(scores[i, j])) for j in top[i]] for i in range(N)}


def _read(spark, path) -> dict[str, list[tuple[str, float]]]:
    got: dict[str, list] = {}
    for r in sorted(spark.read.parquet(str(path)).collect(), key=lambda r: (r["key"], r["rank"])):
        got.setdefault(r["key"], []).append((r["neighbor"], r["score"]))
    return got


def _recall(got, expected) -> float:
    return sum(len({n for n, _ in got.get(key, [])} & {n for n, _ in want}) for key, want in expected.items()) / (
        K * len(expected))


def _last_error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("kind", ["hnsw", "ivf-pq"])
def test_index_neighbors_match_exact_and_rerun(spark, write_table, tmp_path, kind, monkeypatch):
    table = _write(write_table, tmp_path / "table")
    for _ in range(2):  # a second build replaces the first
        assert main(["index", "--table", table, "--kind", kind]) == 0
    index_dir = tmp_path / "table" / "_index"
    assert sorted(p.name for p in index_dir.iterdir()) == ["index.faiss", "index.json"]
    assert not [p for p in (tmp_path / "table").iterdir() if p.name.startswith("_index.")]  # no leftovers
    manifest = json.loads((index_dir / "index.json").read_text())
    assert (manifest["kind"], manifest["table"]["rows"], manifest["table"]["dim"]) == (kind, N, DIM)
    assert manifest["index_bytes"] == (index_dir / "index.faiss").stat().st_size
    out = tmp_path / "nn"
    import faiss

    def driver_loads(*_args):  # the driver checks index.json and the file's header; only tasks load the index
        raise AssertionError("the driver loaded the whole index")

    monkeypatch.setattr(faiss, "deserialize_index", driver_loads)
    monkeypatch.setattr(faiss, "read_index", driver_loads)
    for _ in range(2):
        assert main(["neighbors", "--table", table, "--output", str(out), "--k", str(K), "--method", "index",
                     "--block-rows", "64"]) == 0
    got, expected = _read(spark, out), _exact()
    assert _recall(got, expected) >= 0.95
    exact_scores = {key: dict(_exact_all()[key]) for key in got}
    for key, neighbours in got.items():  # reported scores are the exact cosines, ranks best first
        assert all(a[1] >= b[1] for a, b in zip(neighbours, neighbours[1:], strict=False))
        for neighbour, score in neighbours:
            assert neighbour != key
            assert score == pytest.approx(exact_scores[key][neighbour], abs=1e-5)


def _exact_all() -> dict[str, list[tuple[str, float]]]:
    keys, vectors = _vectors()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit.T
    return {keys[i]: [(keys[j], float(scores[i, j])) for j in range(N) if j != i] for i in range(N)}


def test_readers_skip_the_index_and_api_uses_it(spark, write_table, tmp_path, monkeypatch):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    table = _write(write_table, tmp_path / "table")
    assert main(["index", "--table", table]) == 0
    assert spark.read.parquet(table).count() == N
    assert pq.read_table(table).num_rows == N
    assert pads.dataset(table, format="parquet").count_rows() == N
    assert len(pd.read_parquet(table)) == N
    assert duckdb.sql(f"select count(*) from read_parquet('{table}/**/*.parquet')").fetchall()[0][0] == N

    calls = []
    search = AnnIndex.search
    monkeypatch.setattr(AnnIndex, "search", lambda self, *a: calls.append(1) or search(self, *a))
    assert [k for k, _ in open_table(table).most_similar("k007", K)] == [k for k, _ in _exact()["k007"]]
    assert calls == [1]


def test_bad_indexes_fail_with_one_line_and_write_nothing(spark, write_table, tmp_path, capsys, monkeypatch):
    table = _write(write_table, tmp_path / "table")
    out = tmp_path / "nn"
    args = ["neighbors", "--table", table, "--output", str(out), "--method", "index"]
    hint = f"embedpipe index --table {table}"

    assert main(args) != 0  # no index built
    assert _last_error(capsys) == f"embedpipe neighbors: error: table {table} has no index: build one with {hint}"

    other = _write(write_table, tmp_path / "other", seed=4)  # an index built for another table
    assert main(["index", "--table", other]) == 0
    shutil.copytree(f"{other}/_index", f"{table}/_index")
    assert main(args) != 0
    assert _last_error(capsys) == f"embedpipe neighbors: error: index is stale: rebuild with {hint}"
    assert [k for k, _ in open_table(table).most_similar("k007", K)] == [k for k, _ in _exact()["k007"]]

    assert main(["index", "--table", table]) == 0  # rebuilt: fresh again; then the table's manifest changes
    manifest = json.loads((tmp_path / "table" / "_manifest.json").read_text())
    (tmp_path / "table" / "_manifest.json").write_text(json.dumps({**manifest, "created_at": "2000-01-01"}))
    assert main(args) != 0
    assert _last_error(capsys) == f"embedpipe neighbors: error: index is stale: rebuild with {hint}"

    assert main(["index", "--table", table]) == 0  # a corrupt index file
    (tmp_path / "table" / "_index" / "index.faiss").write_bytes(b"not a faiss index")
    assert main(args) != 0
    error = _last_error(capsys)
    assert error.startswith(f"embedpipe neighbors: error: cannot read index {table}/_index/index.faiss (faiss ")
    assert error.endswith(f"; rebuild with {hint}")
    assert [k for k, _ in open_table(table).most_similar("k007", K)] == [k for k, _ in _exact()["k007"]]

    index_file = tmp_path / "table" / "_index" / "index.faiss"  # checked without loading it: size, then header
    assert main(["index", "--table", table, "--kind", "ivf-pq"]) == 0
    good = index_file.read_bytes()
    prefix = f"cannot read index {table}/_index/index.faiss (faiss "
    for data, problem in [(good[:-1], f"{len(good) - 1} bytes, its manifest says {len(good)}"),
                          (b"IHNf" + good[4:], "not a Faiss ivf-pq index (it starts with b'IHNf')")]:
        index_file.write_bytes(data)
        with pytest.raises(InputError) as error:
            check_index(table, rows=N, dim=DIM)
        assert str(error.value).startswith(prefix) and str(error.value).endswith(f"): {problem}; rebuild with {hint}")
    index_file.write_bytes(good[:8] + (N + 1).to_bytes(8, "little") + good[16:])
    with pytest.raises(InputError) as error:
        check_index(table, rows=N, dim=DIM)
    assert str(error.value) == (f"index {table}/_index/index.faiss holds {N + 1} x {DIM} vectors, its manifest says "
                                f"{N} x {DIM}: rebuild with {hint}")

    (tmp_path / "table" / "_index" / "index.json").write_text("{")  # an unreadable index manifest
    assert main(args) != 0
    assert _last_error(capsys) == (f"embedpipe neighbors: error: index of table {table} is unreadable "
                                   f"(_index/index.json is not an embedpipe index manifest): rebuild with {hint}")

    _write(write_table, tmp_path / "table")  # a rewritten table loses its index with the old rows
    assert not (tmp_path / "table" / "_index").exists()
    assert main(args) != 0
    assert _last_error(capsys) == f"embedpipe neighbors: error: table {table} has no index: build one with {hint}"
    assert not out.exists()


@pytest.mark.slow  # ~15 s on 2 loaded cores: a table, an index build and a neighbors run
def test_bad_search_parameters_in_the_index_manifest_fail_with_one_line(spark, write_table, tmp_path, capsys):
    table = _write(write_table, tmp_path / "table")
    assert main(["index", "--table", table, "--kind", "ivf-pq"]) == 0
    path = tmp_path / "table" / "_index" / "index.json"
    manifest = json.loads(path.read_text())
    assert manifest["search"]["rerank"] >= 1 and manifest["build"]["pq_m"] == DIM // 2  # recorded: 2 dims a byte
    hint = f"rebuild with embedpipe index --table {table}"
    path.write_text(json.dumps({**manifest, "search": {**manifest["search"], "rerank": 0}}))
    out = tmp_path / "nn"
    assert main(["neighbors", "--table", table, "--output", str(out), "--method", "index"]) != 0
    assert _last_error(capsys) == (f"embedpipe neighbors: error: index of table {table} has search parameter "
                                   f"rerank = 0 in _index/index.json (a positive integer): {hint}")
    assert not out.exists()
    for change, message in [
        ({"search": {**manifest["search"], "nprobe": "many"}}, "search parameter nprobe = 'many'"),
        ({"search": {"nprobe": 4}}, "search parameter rerank = None"),
        ({"kind": "lsh"}, "kind 'lsh'"),
    ]:
        path.write_text(json.dumps({**manifest, **change}))
        with pytest.raises(InputError) as error:
            load_index(table)
        expected = "one of: hnsw, ivf-pq" if "kind" in change else "a positive integer"
        assert str(error.value) == f"index of table {table} has {message} in _index/index.json ({expected}): {hint}"
    assert [k for k, _ in open_table(table).most_similar("k007", K)] == [k for k, _ in _exact()["k007"]]


def test_missing_faiss_is_one_line_naming_the_extra(spark, write_table, tmp_path, capsys, monkeypatch):
    table = _write(write_table, tmp_path / "table")
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    expected = "error: the ANN index needs faiss: pip install 'embedpipe[index]' (the 'index' extra, faiss-cpu)"
    assert main(["index", "--table", table]) != 0
    assert _last_error(capsys) == f"embedpipe index: {expected}"
    assert not [p for p in (tmp_path / "table").iterdir() if p.name.startswith("_index")]
    out = tmp_path / "nn"
    assert main(["neighbors", "--table", table, "--output", str(out), "--method", "index"]) != 0
    assert _last_error(capsys) == f"embedpipe neighbors: {expected}"
    assert not out.exists()


@pytest.mark.slow  # ~20 s loaded: two index builds (hnsw, then ivf-pq) over 1,000 keys
def test_auto_replaces_an_hnsw_graph_below_the_target_recall(spark, write_table, tmp_path, capsys, monkeypatch):
    from embedpipe.index import build

    rows, dim = 1000, 32
    vectors = np.random.default_rng(8).standard_normal((rows, dim)).astype(np.float32)  # no structure: hard
    table = str(tmp_path / "table")
    write_table(table, [(f"r{i}", i, rows - i, v.tolist()) for i, v in enumerate(vectors)], dim=dim, key_kind="item")
    assert main(["index", "--table", table, "--target-recall", "0"]) != 0  # bad value: one line naming the key
    assert _last_error(capsys) == "embedpipe index: error: config key 'target_recall' must be > 0.0, got 0.0"
    assert not (tmp_path / "table" / "_index").exists()

    monkeypatch.setattr(build, "HNSW_EF_SEARCH_LADDER", (1,))  # a beam of k + 1: the graph misses neighbours
    assert main(["index", "--table", table, "--target-recall", "1"]) == 0
    manifest = json.loads((tmp_path / "table" / "_index" / "index.json").read_text())
    probe = manifest["probe"]
    assert manifest["kind"] == "ivf-pq" and probe["replaced"]["kind"] == "hnsw"
    assert probe["replaced"]["recall"] < probe["recall"]  # ivf-pq rescores 440 candidates of 1,000 keys
    # every list (25 = 1,000 // 39): the smallest nprobe the probe tried that reached the target (it bisects
    # below the first ladder value reaching it, so the chosen value need not be the last one tried)
    assert manifest["search"]["nprobe"] == min(n for n, recall in probe["nprobe"] if recall >= 1.0) == 25
