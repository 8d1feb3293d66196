"""``tokenizer = "kiwi"``: Korean eojeol split into morphemes by Kiwi (kiwipiepy, the ``korean`` extra).

Korean attaches particles and endings to words (``고양이가``, ``고양이를``: one noun), so a regex
tokenizer gives every inflected form its own token. Kiwi, a maintained morphological analyser, splits
each eojeol into morphemes: ``고양이가 밥을 먹었다`` -> ``고양이 밥 먹 었 다`` (the morphemes as Kiwi
writes them, without their tags). Particles (josa, tags ``J*``) are dropped unless ``keep_particles``;
punctuation goes as the regex tokenizer drops it; Latin words and numbers inside Korean text stay
(Kiwi tags them ``SL``/``SN``).

It runs inside Spark as a scalar Arrow UDF: one ``Kiwi.tokenize`` call per Arrow batch of documents
(Kiwi takes an iterable of texts), the analyser loaded once per Python worker process. Only the text
column travels to Python and only the tokens come back, as with the embed job's UDF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from embedpipe.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column

#: The optional dependency group that installs kiwipiepy.
EXTRA = "korean"
_ANALYSERS: dict[str, Any] = {}


def require_kiwi() -> None:
    """A one-line ConfigError naming the extra when kiwipiepy is not installed (checked on the driver)."""
    try:
        import kiwipiepy  # noqa: F401
    except ImportError:
        raise ConfigError(f"config key 'tokenizer' is kiwi but kiwipiepy is not installed: install the '{EXTRA}' "
                          f"extra (pip install 'embedpipe[{EXTRA}]')") from None


def _analyser() -> Any:
    """One Kiwi per Python worker process (loading its model takes seconds)."""
    hit = _ANALYSERS.get("kiwi")
    if hit is None:
        from kiwipiepy import Kiwi

        hit = _ANALYSERS["kiwi"] = Kiwi(num_workers=1)  # Spark already runs one task per core
    return hit


def morphemes(texts: list[str | None], keep_particles: bool) -> list[list[str] | None]:
    """The morphemes of each text (None stays None), in one analyser call."""
    present = [t for t in texts if t is not None]
    analysed = iter(_analyser().tokenize(present)) if present else iter(())
    out: list[list[str] | None] = []
    for text in texts:
        if text is None:
            out.append(None)
            continue
        tokens = next(analysed)
        out.append([t.form for t in tokens if keep_particles or not t.tag.startswith("J")])
    return out


def kiwi_tokens(text: Column, keep_particles: bool) -> Column:
    """``array<string>`` of the morphemes of ``text`` (NULL stays NULL), one analyser call per Arrow batch."""
    from pyspark.sql import functions as F

    require_kiwi()

    def analyse(batch: pa.Array) -> pa.Array:
        return pa.array(morphemes(batch.to_pylist(), keep_particles), pa.list_(pa.string()))

    return F.arrow_udf(analyse, "array<string>")(text)
