"""Loading ``<table>/_index/`` (:func:`embedpipe.index.store.load_index`): the index is streamed into Faiss
in blocks, so a ``neighbors`` worker holds one copy of it, not the file's bytes beside the index."""

from __future__ import annotations

import json

import numpy as np
import pytest

faiss = pytest.importorskip("faiss", reason="the ANN index needs the 'index' extra (faiss-cpu)")

from embedpipe.index import store  # noqa: E402


class _RecordingFileSystem:
    """The local filesystem, recording the size of every read of the index file (None: the whole rest)."""

    def __init__(self, reads: list[int | None]) -> None:
        from pyarrow import fs as pafs

        self._fs, self._reads = pafs.LocalFileSystem(), reads

    def __getattr__(self, name: str):
        return getattr(self._fs, name)

    def open_input_stream(self, path: str):
        stream = self._fs.open_input_stream(path)
        reads = self._reads if path.endswith(store.INDEX_FILE) else []

        class Recording:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                stream.close()

            def read(self, nbytes=None):
                reads.append(nbytes)
                return stream.read(nbytes)

        return Recording()


def test_the_index_is_streamed_into_faiss(tmp_path, monkeypatch):
    faiss.omp_set_num_threads(1)
    rows, dim = 8000, 128
    unit = np.random.default_rng(2).standard_normal((rows, dim)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    index = faiss.IndexHNSWFlat(dim, 8, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 8  # a quick, poor graph: only the bytes matter here
    index.add(unit)
    table = tmp_path / "table"
    (table / store.INDEX_DIR).mkdir(parents=True)
    (table / store.TABLE_MANIFEST).write_text("{}")
    path = table / store.INDEX_DIR / store.INDEX_FILE
    faiss.write_index(index, str(path))
    size = path.stat().st_size
    fingerprint = store.table_fingerprint(*store.filesystem(str(table)))
    (table / store.INDEX_DIR / store.INDEX_MANIFEST).write_text(json.dumps({
        "format": store.INDEX_FORMAT, "kind": store.HNSW, "search": {"ef_search": 32}, "index_bytes": size,
        "table": {"fingerprint": fingerprint, "rows": rows, "dim": dim}}))
    reads: list[int | None] = []
    monkeypatch.setattr(store, "filesystem", lambda p: (_RecordingFileSystem(reads), p))

    loaded = store.load_index(str(table), rows=rows, dim=dim)

    assert loaded.index.ntotal == rows and size > 4_000_000
    assert reads and None not in reads and max(reads) < size // 4  # blocks, never the whole file at once
    queries = np.arange(0, rows, 197)
    assert np.array_equal(loaded.search(unit, queries, 10)[0],
                          store.AnnIndex(index, loaded.manifest).search(unit, queries, 10)[0])
