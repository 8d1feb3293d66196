"""The vectors file formats and which keys each can hold.

Every format is one row per key: the key, then ``dim`` numbers. ``word2vec`` and ``fasttext-vec``
are the same text layout (a ``rows dim`` header line, then ``key v1 ... vdim`` per line; fastText
writes a space before each newline, which the reader accepts); ``glove`` is that layout without the
header; ``word2vec-binary`` has the same header, then per row the UTF-8 key, one space and ``dim``
little-endian float32s (word2vec.c writes a newline after each row, gensim does not: both read).
None of them carries counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

TEXT_FORMATS = ("word2vec", "fasttext-vec", "glove")
BINARY_FORMAT = "word2vec-binary"
EXPORT_FORMATS = ("word2vec", "word2vec-binary", "fasttext-vec")
IMPORT_FORMATS = ("word2vec", "word2vec-binary", "glove", "fasttext-vec")

#: Characters a text reader splits on: exactly Python's ``str.isspace`` (``line.split()`` in
#: gensim's and many hand-written readers), in RE2 syntax.
_TEXT_SEPARATORS = r"[\s\v\x{85}\x{1c}-\x{1f}\p{Z}]"
#: A binary reader ends a key at a space; word2vec.c's tools (``fscanf("%s")``) at any ASCII whitespace.
_BINARY_SEPARATORS = r"[ \t\n\r\v\f]"


def has_header(fmt: str) -> bool:
    """Whether the format starts with a ``rows dim`` line (all but GloVe)."""
    return fmt != "glove"


def check_keys(keys: pa.Array, fmt: str, *, table: str) -> None:
    """Refuse (one line naming the key) a key the format cannot hold: empty, or with a separator inside."""
    import pyarrow.compute as pc  # not at module level: the job configs import this module's names

    pattern = _BINARY_SEPARATORS if fmt == BINARY_FORMAT else _TEXT_SEPARATORS
    bad = pc.or_(pc.match_substring_regex(keys, pattern), pc.equal(pc.utf8_length(keys), 0))
    if pc.any(bad).as_py():
        key = keys.filter(bad)[0].as_py()
        what = "a space, tab or newline" if fmt == BINARY_FORMAT else "whitespace"
        problem = "is empty" if key == "" else f"contains {what}"
        raise InputError(
            f"embedding table {table}: key {key!r} {problem}, which the {fmt} format cannot hold (a reader would "
            "split the key there); export to a format that can, or rename the key"
        )
