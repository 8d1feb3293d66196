"""Unicode-aware tokenization as Spark SQL expressions (no Python UDF), plus a plain-Python twin.

A token is a maximal run of letters, combining marks and digits (``\\p{L}``, ``\\p{M}``, ``\\p{N}``),
optionally joined by apostrophes inside a word (``don't``, ``l'homme``; the typographic ``’`` is
normalised to ``'``). So "Café résumé" gives ``café``, ``résumé``, Greek and Cyrillic work the same,
and Korean, which separates words with spaces, gives ``서울은``, ``한국의``, ``수도입니다``.

Limitations, by design of a regex tokenizer:

* Chinese and Japanese are written without spaces, so a run of Han/Kana characters is one token
  (``我爱北京`` stays whole). Segment such text beforehand (e.g. jieba, MeCab) and join the words with
  spaces, or the vocabulary will hold phrases instead of words.
* Korean particles stay attached (``서울은`` and ``서울`` are different tokens); ``tokenizer = "kiwi"``
  splits eojeol into morphemes with a morphological analyser (:mod:`embedpipe.text.kiwi`).
* Text is not Unicode-normalised: a precomposed ``é`` and ``e`` + combining accent are different
  tokens (Spark SQL has no NFC function). Normalise upstream if the corpus mixes the two.
* Lowercasing is Spark's ``lower`` (Java's, locale-independent: Turkish dotted/dotless i is not special).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Collection
from typing import TYPE_CHECKING

from embedpipe.errors import InputError
from embedpipe.jobconfig import TokenizerSettings
from embedpipe.storage import HadoopFS

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

log = logging.getLogger(__name__)

#: Letters, marks and digits, with apostrophes allowed between them (Java regex syntax).
WORD_PATTERN = r"[\p{L}\p{M}\p{N}]+(?:'[\p{L}\p{M}\p{N}]+)*"
#: A token holding at least one letter, mark or digit.
WORD_CHAR_PATTERN = r"[\p{L}\p{M}\p{N}]"
#: A token made only of digits (any script's digits) -- dropped when ``keep_numbers`` is false.
NUMBER_PATTERN = r"^\p{N}+$"
#: Apostrophe look-alikes mapped to ``'`` before tokenizing, so "don’t" and "don't" are one token.
APOSTROPHES = "\u2019"

#: Languages whose stop words ship with Spark (``StopWordsRemover.loadDefaultStopWords``).
STOP_WORD_LANGUAGES = (
    "danish", "dutch", "english", "finnish", "french", "german", "hungarian", "italian",
    "norwegian", "portuguese", "russian", "spanish", "swedish", "turkish",
)


def load_stop_words(spark: SparkSession, spec: str) -> frozenset[str]:
    """The stop words ``spec`` names: empty for none, a Spark language name, or a file (one per line).

    Words are lowercased: matching is case-insensitive, like Spark's StopWordsRemover default.
    A file may hold blank lines and ``#`` comments. The list is small and lives on the driver.
    """
    spec = spec.strip()
    if not spec:
        return frozenset()
    if spec.lower() in STOP_WORD_LANGUAGES:
        from pyspark.ml.feature import StopWordsRemover

        words = StopWordsRemover.loadDefaultStopWords(spec.lower())
    else:
        fs = HadoopFS(spark)
        if not fs.exists(spec):
            raise InputError(
                f"stop words file not found: {spec} (stop_words must be empty, a file, "
                f"or one of {', '.join(STOP_WORD_LANGUAGES)})"
            )
        try:
            text = fs.read_text(spec)
        except UnicodeDecodeError:
            raise InputError(f"stop words file {spec} is not UTF-8 text") from None
        words = [line.strip() for line in text.splitlines()]
        words = [w for w in words if w and not w.startswith("#")]
    result = frozenset(w.replace(APOSTROPHES, "'").lower() for w in words)
    log.info("stop words %r: %d words", spec, len(result))
    return result


def read_stop_words(spec: str) -> frozenset[str]:
    """:func:`load_stop_words` without a JVM (the Spark-free table API tokenizes raw text with it).

    Language lists are read from the Spark MLlib jar that ships with pyspark (the same files
    ``StopWordsRemover.loadDefaultStopWords`` reads); a file is read from the local filesystem.
    """
    import glob
    import os
    import zipfile

    spec = spec.strip()
    if not spec:
        return frozenset()
    if spec.lower() in STOP_WORD_LANGUAGES:
        import pyspark

        jars = glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "spark-mllib_*.jar"))
        if not jars:
            raise InputError(f"stop words {spec!r}: pyspark's MLlib jar is not installed")
        with zipfile.ZipFile(jars[0]) as jar:
            text = jar.read(f"org/apache/spark/ml/feature/stopwords/{spec.lower()}.txt").decode("utf-8")
    else:
        path = spec.removeprefix("file://").removeprefix("file:")
        if not os.path.isfile(path):
            raise InputError(f"stop words file not found: {spec}")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    words = [line.strip() for line in text.splitlines()]
    return frozenset(w.replace(APOSTROPHES, "'").lower() for w in words if w and not w.startswith("#"))


def tokenize_column(text: Column, settings: TokenizerSettings, stop_words: Collection[str] = ()) -> Column:
    """``array<string>`` of the tokens of ``text`` (a string Column), in document order.

    Pure Spark SQL: ``regexp_extract_all`` with Unicode classes, then ``filter`` for length,
    numbers and stop words (an ``isin`` list, which Spark turns into a hash-set lookup). A NULL
    ``text`` gives NULL.
    """
    from pyspark.sql import functions as F

    normalised = F.translate(text, APOSTROPHES, "'" * len(APOSTROPHES))
    if settings.lowercase:
        normalised = F.lower(normalised)
    if settings.tokenizer == "kiwi":
        from embedpipe.text.kiwi import kiwi_tokens

        tokens = kiwi_tokens(normalised, settings.keep_particles)
    else:
        tokens = F.regexp_extract_all(normalised, F.lit(WORD_PATTERN), 0)
    stop_list = sorted(stop_words)

    def keep(token: Column) -> Column:
        length = F.length(token)
        condition = (length >= settings.min_token_length) & (length <= settings.max_token_length)
        if settings.tokenizer == "kiwi":  # punctuation morphemes go, as the regex drops punctuation
            condition = condition & token.rlike(WORD_CHAR_PATTERN)
        if not settings.keep_numbers:
            condition = condition & ~token.rlike(NUMBER_PATTERN)
        if stop_list:
            key = token if settings.lowercase else F.lower(token)
            condition = condition & ~key.isin(stop_list)
        return condition

    return F.filter(tokens, keep)


# ----------------------------------------------------------------------------- plain Python twin


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN"


def tokenize_text(text: str, settings: TokenizerSettings, stop_words: Collection[str] = ()) -> list[str]:
    """The same rules as :func:`tokenize_column` for a few strings on the driver (probe words, queries).

    A character-by-character scan: fine for short strings, never for a corpus.
    """
    normalised = text.translate({ord(c): "'" for c in APOSTROPHES})
    if settings.lowercase:
        normalised = normalised.lower()
    if settings.tokenizer == "kiwi":
        from embedpipe.text.kiwi import morphemes, require_kiwi

        require_kiwi()
        raw = [t for t in morphemes([normalised], settings.keep_particles)[0] or [] if any(map(_is_word_char, t))]
        return _kept(raw, settings, stop_words)
    raw: list[str] = []
    current: list[str] = []
    for position, char in enumerate(normalised):
        if _is_word_char(char):
            current.append(char)
        elif (
            char == "'"
            and current
            and position + 1 < len(normalised)
            and _is_word_char(normalised[position + 1])
        ):
            current.append(char)
        elif current:
            raw.append("".join(current))
            current = []
    if current:
        raw.append("".join(current))
    return _kept(raw, settings, stop_words)


def _kept(raw: list[str], settings: TokenizerSettings, stop_words: Collection[str]) -> list[str]:
    stop = {w.lower() for w in stop_words}
    return [
        token
        for token in raw
        if settings.min_token_length <= len(token) <= settings.max_token_length
        and (settings.keep_numbers or not all(unicodedata.category(c)[0] == "N" for c in token))
        and token.lower() not in stop
    ]
