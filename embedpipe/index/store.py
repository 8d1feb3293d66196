"""The ``_index/`` directory of a table: layout, the staleness rule, loading and searching.

Layout (docs/table-format.md): ``<table>/_index/index.faiss`` (a Faiss index over the table's
unit vectors, inner product = cosine, Faiss id = table row) and ``<table>/_index/index.json`` (its
manifest: kind, build and search parameters, Faiss version, and the table it was built for). The
leading underscore keeps Spark, pyarrow, pandas and DuckDB from reading the directory as rows,
like ``_manifest.json``.

Staleness: the index records the table's *fingerprint* (SHA-256 of ``_manifest.json`` and of the
names and sizes of the Parquet part files) with its rows and dim. Every writer of a table writes
a new manifest (``created_at``) and new part names, so an index beside a rewritten or copied-over
table no longer matches and is refused: "index is stale: rebuild with embedpipe index --table T".
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedpipe.errors import ConfigError, InputError

log = logging.getLogger(__name__)

INDEX_DIR = "_index"
INDEX_FILE = "index.faiss"
INDEX_MANIFEST = "index.json"
INDEX_FORMAT = "embedpipe.ann_index"
#: The table's manifest (embedpipe.table.MANIFEST_FILE; repeated so this module does not import the table).
TABLE_MANIFEST = "_manifest.json"

HNSW = "hnsw"
IVF_PQ = "ivf-pq"


def import_faiss() -> Any:
    """The ``faiss`` module, or a one-line ConfigError naming the extra that installs it."""
    try:
        import faiss
    except ImportError:
        raise ConfigError("the ANN index needs faiss: pip install 'embedpipe[index]' (the 'index' extra, "
                          "faiss-cpu)") from None
    return faiss


def rebuild_hint(table: str) -> str:
    return f"rebuild with embedpipe index --table {table}"


# ------------------------------------------------------------------------------- filesystem


def filesystem(path: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) for a local path, ``file://`` or any URI pyarrow knows."""
    from pyarrow import fs as pafs

    if "://" not in path:
        return pafs.LocalFileSystem(), path.rstrip("/") or "/"
    filesystem_, root = pafs.FileSystem.from_uri(path)
    return filesystem_, root.rstrip("/")


def read_bytes(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def exists(fs: Any, path: str) -> bool:
    from pyarrow import fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


def table_fingerprint(fs: Any, root: str) -> str:
    """SHA-256 of the table's ``_manifest.json`` and the names and sizes of its data files."""
    from pyarrow import fs as pafs

    digest = hashlib.sha256(read_bytes(fs, f"{root}/{TABLE_MANIFEST}"))
    infos = fs.get_file_info(pafs.FileSelector(root))
    parts = sorted((i.base_name, i.size) for i in infos
                   if i.type == pafs.FileType.File and not i.base_name.startswith(("_", ".")))
    for name, size in parts:
        digest.update(f"\n{name}:{size}".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ loading


@dataclass(frozen=True)
class AnnIndex:
    """A loaded Faiss index and its manifest; :meth:`search` is the one search kernel."""

    index: Any
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    def search(self, unit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of table rows ``rows`` (themselves excluded), best first.

        Returns (neighbour rows, cosines), both (len(rows), k); a slot the index could not fill
        holds row -1 and score -inf. Candidates are rescored exactly against ``unit`` (the
        table's unit vectors): IVF-PQ's compressed distances only pick ``rerank`` x k candidates,
        so reported scores are the true cosines and ties go to the lower row (the more frequent
        key), as in the exact kernel.
        """
        params = self.manifest["search"]
        queries = np.ascontiguousarray(unit[rows], dtype=np.float32)
        fetch = k + 1
        if self.kind == HNSW:
            self.index.hnsw.efSearch = max(int(params["ef_search"]), fetch)
        else:
            self.index.nprobe = int(params["nprobe"])
            fetch = fetch * int(params["rerank"])
        fetch = min(fetch, int(self.index.ntotal))
        _, found = self.index.search(queries, fetch)
        valid = (found >= 0) & (found != rows[:, None])
        safe = np.where(valid, found, 0)
        scores = np.einsum("qd,qcd->qc", queries, unit[safe])
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        order = np.lexsort((np.where(valid, found, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
        neighbours = np.take_along_axis(np.where(valid, found, -1), order, axis=1)
        top = np.take_along_axis(scores, order, axis=1)
        if neighbours.shape[1] < k:  # fewer rows than k + 1
            pad = k - neighbours.shape[1]
            neighbours = np.pad(neighbours, ((0, 0), (0, pad)), constant_values=-1)
            top = np.pad(top, ((0, 0), (0, pad)), constant_values=-np.inf)
        return neighbours.astype(np.int64), top


def read_index_manifest(table: str) -> dict[str, Any]:
    """The ``_index/index.json`` of ``table``, checked fresh against the table; one-line InputError otherwise."""
    fs, root = filesystem(table)
    manifest_path = f"{root}/{INDEX_DIR}/{INDEX_MANIFEST}"
    if not exists(fs, manifest_path):
        raise InputError(f"table {table} has no index: build one with embedpipe index --table {table}")
    try:
        manifest = json.loads(read_bytes(fs, manifest_path))
        fingerprint, rows, dim = (manifest["table"][key] for key in ("fingerprint", "rows", "dim"))
        manifest["kind"], manifest["search"]  # noqa: B018 - presence check
    except (ValueError, KeyError, TypeError, OSError):
        raise InputError(f"index of table {table} is unreadable ({INDEX_DIR}/{INDEX_MANIFEST} is not an embedpipe "
                         f"index manifest): {rebuild_hint(table)}") from None
    if manifest.get("format") != INDEX_FORMAT or fingerprint != table_fingerprint(fs, root):
        raise InputError(f"index is stale: {rebuild_hint(table)}")
    _check_search_params(table, manifest)
    return manifest


#: The search parameters each kind records in ``index.json`` (all positive integers).
SEARCH_PARAMS = {HNSW: ("ef_search",), IVF_PQ: ("nprobe", "rerank")}


def _check_search_params(table: str, manifest: dict[str, Any]) -> None:
    """A hand-edited or foreign ``index.json`` fails here, one line naming the key, not inside a Spark task."""
    names = SEARCH_PARAMS.get(manifest["kind"]) if isinstance(manifest["kind"], str) else None
    if names is None:
        raise InputError(f"index of table {table} has kind {manifest['kind']!r} in {INDEX_DIR}/{INDEX_MANIFEST} "
                         f"(one of: {', '.join(SEARCH_PARAMS)}): {rebuild_hint(table)}")
    search = manifest["search"] if isinstance(manifest["search"], dict) else {}
    for name in names:
        value = search.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"index of table {table} has search parameter {name} = {value!r} in {INDEX_DIR}/"
                             f"{INDEX_MANIFEST} (a positive integer): {rebuild_hint(table)}")


#: The first four bytes Faiss writes for each kind (``IndexHNSWFlat``, ``IndexIVFPQ``), then ``d`` (int32) and
#: ``ntotal`` (int64), little-endian: what :func:`check_index` reads instead of the whole file.
FAISS_FOURCC = {HNSW: b"IHNf", IVF_PQ: b"IwPQ"}
_HEADER_BYTES = 16


def check_index(table: str, *, rows: int | None = None, dim: int | None = None) -> dict[str, Any]:
    """The manifest of the fresh index of ``table``, checked without reading the index itself.

    What the driver runs before ``neighbors`` tasks load the index (it may be GBs): ``index.json``
    (fingerprint, shape, search parameters) and, of ``index.faiss``, its size against the recorded
    ``index_bytes`` and its 16-byte Faiss header (the kind's four-character code, dim and rows). A
    truncated, foreign or other-kind file fails here with one line, not inside a Spark task.
    """
    faiss = import_faiss()
    manifest = read_index_manifest(table)
    recorded = manifest["table"]
    if (rows is not None and rows != recorded["rows"]) or (dim is not None and dim != recorded["dim"]):
        raise InputError(f"index is stale: {rebuild_hint(table)}")
    fs, root = filesystem(table)
    path = f"{root}/{INDEX_DIR}/{INDEX_FILE}"
    try:
        size = fs.get_file_info(path).size
        with fs.open_input_file(path) as stream:
            header = stream.read(_HEADER_BYTES)
    except OSError as exc:
        header, size, problem = b"", None, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    else:
        problem = None
    if problem is None and size != manifest.get("index_bytes"):
        problem = f"{size} bytes, its manifest says {manifest.get('index_bytes')}"
    if problem is None and header[:4] != FAISS_FOURCC[manifest["kind"]]:
        problem = f"not a Faiss {manifest['kind']} index (it starts with {header[:4]!r})"
    if problem is not None:
        raise InputError(f"cannot read index {table}/{INDEX_DIR}/{INDEX_FILE} (faiss {faiss.__version__}): {problem}; "
                         f"{rebuild_hint(table)}")
    file_dim, file_rows = int(np.frombuffer(header, "<i4", 1, 4)[0]), int(np.frombuffer(header, "<i8", 1, 8)[0])
    _check_file_shape(table, manifest, file_rows, file_dim)
    return manifest


def _check_file_shape(table: str, manifest: dict[str, Any], rows: int, dim: int) -> None:
    if rows != manifest["table"]["rows"] or dim != manifest["table"]["dim"]:
        raise InputError(f"index {table}/{INDEX_DIR}/{INDEX_FILE} holds {rows} x {dim} vectors, its "
                         f"manifest says {manifest['table']['rows']} x {manifest['table']['dim']}: "
                         f"{rebuild_hint(table)}")


def load_index(table: str, *, rows: int | None = None, dim: int | None = None) -> AnnIndex:
    """Load the fresh index of ``table`` (``rows``/``dim``: the table as read, checked against the index)."""
    faiss = import_faiss()
    manifest = check_index(table, rows=rows, dim=dim)
    fs, root = filesystem(table)
    path = f"{root}/{INDEX_DIR}/{INDEX_FILE}"
    try:  # streamed into Faiss in its own blocks: one copy in memory (bytes + deserialize_index held three)
        with fs.open_input_stream(path) as stream:
            index = faiss.read_index(faiss.PyCallbackIOReader(stream.read))
    except (RuntimeError, OSError) as exc:  # Faiss raises RuntimeError for a corrupt or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read index {table}/{INDEX_DIR}/{INDEX_FILE} (faiss {faiss.__version__}): "
                         f"{first[:200]}; {rebuild_hint(table)}") from None
    _check_file_shape(table, manifest, int(index.ntotal), int(index.d))
    return AnnIndex(index, manifest)


def try_load_index(table: str | None, *, rows: int, dim: int) -> AnnIndex | None:
    """:func:`load_index` for the Python API: None (exact search) when there is no usable index."""
    if table is None:
        return None
    fs, root = filesystem(table)
    if not exists(fs, f"{root}/{INDEX_DIR}/{INDEX_MANIFEST}"):
        return None
    try:
        return load_index(table, rows=rows, dim=dim)
    except (InputError, ConfigError) as exc:
        log.warning("most_similar: exact search (%s)", exc)
        return None
