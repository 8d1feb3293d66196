"""Stream a vectors file as Arrow batches: (keys, float32 matrix) of a few thousand rows at a time.

Text files go through Arrow's CSV reader (space-delimited, no quoting), which parses in C++ block by
block; when it refuses a block, the lines from there are re-read in Python to name the first bad line
and why. Binary files are read in chunks of a few MiB. Every problem is a one-line
:class:`~embedpipe.errors.InputError` naming the file and the line (or row) and key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe.errors import InputError
from embedpipe.interop.formats import BINARY_FORMAT, has_header

#: Bytes of the file read at a time (binary) or parsed per Arrow block (text, at least this).
CHUNK_BYTES = 16 << 20
#: Rows per batch of the binary reader.
BATCH_ROWS = 8192
#: A header or first row longer than this is not a vectors file.
MAX_LINE_BYTES = 64 << 20


@dataclass(frozen=True)
class VectorBatch:
    keys: pa.Array  # string
    vectors: np.ndarray  # (rows, dim) float32


@dataclass(frozen=True)
class VectorsFile:
    """An opened vectors file: its ``dim``, the rows its header states (None for GloVe) and its batches."""

    path: str
    fmt: str
    dim: int
    declared_rows: int | None
    batches: Iterator[VectorBatch]


def input_filesystem(path: str, what: str = "vectors file") -> tuple[Any, str]:
    """The pyarrow filesystem and path of ``path`` (a local path or any URI pyarrow knows)."""
    import pyarrow.fs as pafs

    if "://" in path or path.startswith("file:"):
        try:
            return pafs.FileSystem.from_uri(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {what} {path}: {_first_line(exc)}") from None
    return pafs.LocalFileSystem(), path


def _open(path: str) -> Any:
    """An input stream of the file; ``.gz``/``.bz2``/``.zst`` files are decompressed on the fly."""
    import pyarrow.fs as pafs

    fs, local = input_filesystem(path)
    try:
        info = fs.get_file_info(local)
        if info.type == pafs.FileType.NotFound:
            raise InputError(f"vectors file not found: {path}")
        if info.type != pafs.FileType.File:
            raise InputError(f"vectors file {path} is not a file")
        return fs.open_input_stream(local)
    except OSError as exc:
        raise InputError(f"cannot read vectors file {path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def open_vectors(path: str, fmt: str) -> VectorsFile:
    """Read the header (or GloVe's first row) now, so a bad file fails before any output is touched."""
    head = _read_head(path, lines=2 if has_header(fmt) and fmt != BINARY_FORMAT else 1)
    name = f"vectors file {path}"
    if not head or not head[0].strip():
        raise InputError(f"{name} is empty" if not head else f"{name}: line 1 is empty")
    if has_header(fmt):
        rows, dim = _parse_header(head[0], name, fmt)
        if fmt == BINARY_FORMAT:
            return VectorsFile(path, fmt, dim, rows, _binary_batches(path, name, rows, dim))
        if len(head) < 2:
            raise InputError(f"{name} has no rows after its header (which states {rows})")
        first, skip = head[1], 1
    else:
        first, skip = head[0], 0
        rows = None
        dim = len(_text_fields(first, name, skip + 1)) - 1
        if dim < 1:
            raise InputError(f"{name}: line 1 has no values after its key; is it a GloVe file?")
    trailing = _text(first, name, skip + 1).endswith(" ")
    return VectorsFile(path, fmt, dim, rows, _text_batches(path, name, dim, rows, skip, trailing))


def _read_head(path: str, *, lines: int) -> list[bytes]:
    """The first ``lines`` lines (without their newline), read in small chunks."""
    chunks: list[bytes] = []
    newlines = size = 0
    with _open(path) as stream:
        while newlines < lines and size < MAX_LINE_BYTES:
            chunk = stream.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            size += len(chunk)
    parts = b"".join(chunks).split(b"\n")
    if len(parts) > lines:
        parts = parts[:lines]
    elif parts[-1] == b"":  # the file ends with a newline (or is empty)
        parts.pop()
    return [p.rstrip(b"\r") for p in parts]


def _text(line: bytes, name: str, number: int) -> str:
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError(f"{name}: line {number} is not UTF-8 text") from None


def _text_fields(line: bytes, name: str, number: int) -> list[str]:
    return _text(line, name, number).rstrip(" ").split(" ")


def _parse_header(line: bytes, name: str, fmt: str) -> tuple[int, int]:
    try:
        fields = line.decode("ascii").split()
        rows, dim = (int(f) for f in fields) if len(fields) == 2 else (-1, -1)
    except (UnicodeDecodeError, ValueError):
        rows, dim = -1, -1
    if rows < 0 or dim < 1:
        hint = "; a file without a header (GloVe) imports with format glove" if fmt != BINARY_FORMAT else ""
        raise InputError(f"{name}: line 1 is not a '<rows> <dim>' header for format {fmt}{hint}")
    if rows == 0:
        raise InputError(f"{name}: its header states 0 rows; there is nothing to import")
    return rows, dim


# ------------------------------------------------------------------------------------- text


def _text_batches(
    path: str, name: str, dim: int, declared: int | None, skip: int, trailing: bool
) -> Iterator[VectorBatch]:
    import pyarrow.csv as csv

    columns = ["key", *(f"v{i}" for i in range(dim)), *(["end"] if trailing else [])]
    types = {c: pa.float32() for c in columns[1:1 + dim]}
    types["key"] = pa.string()
    if trailing:
        types["end"] = pa.string()
    done = 0
    with _open(path) as stream:
        try:
            reader = csv.open_csv(
                stream,
                read_options=csv.ReadOptions(column_names=columns, skip_rows=skip,
                                             block_size=max(CHUNK_BYTES, 64 * dim * 16)),
                parse_options=csv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False,
                                               newlines_in_values=False, ignore_empty_lines=False),
                convert_options=csv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                                   check_utf8=True),
            )
            for batch in reader:
                if trailing and pc.max(pc.utf8_length(batch.column(dim + 1))).as_py():
                    raise pa.ArrowInvalid("a row has more values than the first")
                vectors = np.column_stack([batch.column(i + 1).to_numpy() for i in range(dim)]).astype(
                    np.float32, copy=False)
                keys = batch.column(0)
                _check_finite(vectors, keys, name, unit="line", first=skip + done + 1)
                done += batch.num_rows
                if declared is not None and done > declared:
                    raise InputError(f"{name} has more rows than its header states ({declared})")
                yield VectorBatch(keys, vectors)
        except pa.ArrowInvalid as exc:
            raise _locate_text_problem(path, name, dim, trailing, skip + done, exc) from None
    if declared is not None and done != declared:
        raise InputError(f"{name} has {done} rows but its header states {declared} (truncated?)")


def _check_finite(vectors: np.ndarray, keys: pa.Array, name: str, *, unit: str, first: int) -> None:
    """NaN/Inf refused while parsing, where the line (``unit`` ``first`` is the batch's first) is still known."""
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InputError(f"{name}: {unit} {first + row} (key {keys[row].as_py()!r}) has a NaN or Inf value")


def _locate_text_problem(
    path: str, name: str, dim: int, trailing: bool, start: int, exc: BaseException
) -> InputError:
    """Re-read lines ``start + 1``... in Python to say which line Arrow refused and why."""
    number = start
    for line in _lines(path, skip=start):
        number += 1
        text = _text(line, name, number)
        if not text.strip():
            return InputError(f"{name}: line {number} is empty")
        if trailing != text.endswith(" "):
            return InputError(f"{name}: line {number} {'does not end' if trailing else 'ends'} with a space, "
                              "unlike the first row")
        fields = text.removesuffix(" ").split(" ") if trailing else text.split(" ")
        key, values = fields[0], fields[1:]
        if not key:
            return InputError(f"{name}: line {number} starts with a space (an empty key)")
        if len(values) != dim:
            return InputError(f"{name}: line {number} (key {key!r}) has {len(values)} values, expected {dim}")
        for value in values:
            try:
                float(value)
            except ValueError:
                return InputError(f"{name}: line {number} (key {key!r}): {value!r} is not a number")
    return InputError(f"{name} cannot be read: {_first_line(exc)}")


def _lines(path: str, *, skip: int) -> Iterator[bytes]:
    """The file's lines after the first ``skip`` (for error reports only)."""
    rest = b""
    seen = 0
    with _open(path) as stream:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                seen += 1
                if seen > skip:
                    yield line
    if rest and seen >= skip:
        yield rest


# ----------------------------------------------------------------------------------- binary


def _binary_batches(path: str, name: str, declared: int, dim: int) -> Iterator[VectorBatch]:
    width = dim * 4
    with _open(path) as stream:
        buffer = b""
        eof = False

        def fill(position: int) -> tuple[bytes, int]:
            nonlocal eof
            chunk = stream.read(CHUNK_BYTES)
            eof = not chunk
            return buffer[position:] + chunk, 0

        buffer, position = fill(0)
        buffer = buffer[buffer.index(b"\n") + 1:]  # the header, checked by open_vectors
        keys: list[str] = []
        blobs: list[bytes] = []
        for row in range(declared):
            while True:
                space = buffer.find(b" ", position)
                if space >= 0 and len(buffer) - space - 1 >= width:
                    break
                if eof:
                    raise InputError(f"{name} is truncated: row {row + 1} of the {declared} its header states is "
                                     "incomplete")
                if space < 0 and len(buffer) - position > MAX_LINE_BYTES:
                    raise InputError(f"{name}: row {row + 1} has no space after its key; not a word2vec binary file")
                buffer, position = fill(position)
            raw = buffer[position:space].lstrip(b"\n")
            try:
                keys.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise InputError(f"{name}: the key of row {row + 1} is not UTF-8") from None
            blobs.append(buffer[space + 1:space + 1 + width])
            position = space + 1 + width
            if len(keys) == BATCH_ROWS or row == declared - 1:
                vectors = np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(keys), dim)
                batch = VectorBatch(pa.array(keys, pa.string()), vectors)
                _check_finite(vectors, batch.keys, name, unit="row", first=row + 2 - len(keys))
                keys, blobs = [], []
                yield batch
        rest = buffer[position:]
        while True:  # only whitespace (word2vec.c's last newline) may follow the stated rows
            if rest.strip():
                raise InputError(f"{name} has more data after the {declared} rows its header states")
            if eof:
                break
            rest = stream.read(CHUNK_BYTES)
            eof = not rest

