"""Finding and parsing evaluation files: word-similarity pairs and analogy questions.

Formats (the ones word2vec, gensim and most papers use):

* **word similarity** (WordSim-353, SimLex-999): one pair per line, ``word1 <sep> word2 <sep> score``
  with tab, comma or blank separators; ``#`` lines are comments. A first line whose score column is
  not a number is a header; when it names the score column (``SimLex999``, ``Human (mean)``,
  ``score``...) that column is used, so the original 10-column ``SimLex-999.txt`` works as well as
  gensim's 3-column copy.
* **analogies** (Google ``questions-words.txt``): ``: section`` header lines, then ``a b c d``
  lines meaning *a is to b as c is to d*.

``builtin`` means the copies gensim ships in ``gensim/test/test_data`` (found through the installed
package, never an absolute path). gensim is only a dev dependency: without it ``builtin`` is
skipped with a warning that the report records, while an explicit path that does not exist is an
:class:`~embedpipe.errors.InputError`. Lines that do not parse are skipped and counted, like gensim.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedpipe.errors import InputError

log = logging.getLogger(__name__)

BUILTIN = "builtin"
BUILTIN_SIMILARITY = ("wordsim353.tsv", "simlex999.txt")
BUILTIN_ANALOGIES = ("questions-words.txt",)
SCORE_COLUMN_NAMES = ("simlex999", "human (mean)", "human(mean)", "score", "similarity", "sim", "mean", "gold")


@dataclass(frozen=True)
class EvalFile:
    """One evaluation file: a short name, where the report says it came from, where it is read."""

    name: str
    location: str
    path: str


@dataclass(frozen=True)
class SimilarityDataset:
    """Word pairs with human similarity scores, in file order."""

    name: str
    location: str
    pairs: list[tuple[str, str]]
    scores: np.ndarray
    lines_skipped: int = 0

    def __len__(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True)
class AnalogyDataset:
    """Analogy questions ``a : b :: c : d`` and the section each belongs to, in file order."""

    name: str
    location: str
    sections: list[str]
    questions: list[tuple[str, str, str, str]]
    section_ids: np.ndarray
    lines_skipped: int = 0

    def __len__(self) -> int:
        return len(self.questions)


# ------------------------------------------------------------------------------------ locating files


def gensim_test_data_dir() -> Path | None:
    """gensim's ``test/test_data`` directory, or None when gensim is not installed."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "test" / "test_data"
        if candidate.is_dir():
            return candidate
    return None


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


def resolve_eval_files(
    specs: Sequence[str], *, kind: str, builtin_names: Sequence[str]
) -> tuple[list[EvalFile], list[str]]:
    """Expand ``builtin`` and check explicit paths exist; return the files and any warnings.

    ``kind`` ("similarity", "analogy") names the files in messages.
    """
    files: list[EvalFile] = []
    warnings: list[str] = []
    for spec in specs:
        if spec == BUILTIN:
            data_dir = gensim_test_data_dir()
            if data_dir is None:
                message = (
                    f"builtin {kind} files skipped: gensim is not installed (pip install gensim, or give file paths)"
                )
                log.warning("%s", message)
                warnings.append(message)
                continue
            for file_name in builtin_names:
                path = data_dir / file_name
                if not path.is_file():
                    message = f"builtin {kind} file {file_name} skipped: not found in the installed gensim"
                    log.warning("%s", message)
                    warnings.append(message)
                    continue
                files.append(EvalFile(_stem(file_name), f"gensim:test/test_data/{file_name}", str(path)))
            continue
        if not _is_file(spec):
            raise InputError(f"{kind} file not found: {spec}")
        files.append(EvalFile(_stem(spec), spec, spec))
    return files, warnings


def _is_file(path: str) -> bool:
    if "://" in path:
        import pyarrow.fs as pafs

        try:
            fs, inner = pafs.FileSystem.from_uri(path)
            return fs.get_file_info(inner).type == pafs.FileType.File
        except (OSError, ValueError):
            return False
    return Path(path).is_file()


def read_text(path: str) -> str:
    """A UTF-8 text file, local or on any filesystem pyarrow knows (``hdfs://``, ``s3://``...)."""
    try:
        if "://" in path:
            import pyarrow.fs as pafs

            fs, inner = pafs.FileSystem.from_uri(path)
            with fs.open_input_stream(inner) as stream:
                data = stream.read()
        else:
            data = Path(path).read_bytes()
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


# ------------------------------------------------------------------------------------ parsing


def _split(line: str, separator: str | None) -> list[str]:
    return [part.strip() for part in line.split(separator)] if separator else line.split()


def _finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_similarity_text(text: str, *, name: str, location: str) -> SimilarityDataset:
    """Parse WordSim-353 / SimLex-999 style text (see the module docstring)."""
    pairs: list[tuple[str, str]] = []
    scores: list[float] = []
    skipped: list[int] = []
    separator: str | None = None
    score_column = 2
    first = True
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if first:
            separator = "\t" if "\t" in line else ("," if "," in line else None)
        fields = _split(line, separator)
        score = _finite_float(fields[score_column]) if len(fields) > score_column else None
        if first and score is None:
            first = False
            names = [f.lower() for f in fields]
            score_column = next((names.index(n) for n in SCORE_COLUMN_NAMES if n in names), score_column)
            continue  # a header line
        first = False
        if score is None or not fields[0] or not fields[1]:
            skipped.append(line_no)
            continue
        pairs.append((fields[0], fields[1]))
        scores.append(score)
    if skipped:
        log.warning("%s: skipped %d lines that are not 'word1, word2, score' (first: line %d)",
                    location, len(skipped), skipped[0])
    if not pairs:
        raise InputError(
            f"similarity file {location} has no word pairs (expected lines 'word1<TAB>word2<TAB>score')"
        )
    return SimilarityDataset(name, location, pairs, np.asarray(scores, dtype=np.float64), len(skipped))


def parse_analogy_text(text: str, *, name: str, location: str) -> AnalogyDataset:
    """Parse questions-words.txt style text; questions before any header go to section '(none)'."""
    sections: list[str] = []
    questions: list[tuple[str, str, str, str]] = []
    section_ids: list[int] = []
    skipped: list[int] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            sections.append(line.lstrip(": ").strip() or f"section {len(sections) + 1}")
            continue
        words = line.split()
        if len(words) != 4:
            skipped.append(line_no)
            continue
        if not sections:
            sections.append("(none)")
        questions.append((words[0], words[1], words[2], words[3]))
        section_ids.append(len(sections) - 1)
    if skipped:
        log.warning("%s: skipped %d lines that are not 'a b c d' (first: line %d)", location, len(skipped), skipped[0])
    if not questions:
        raise InputError(
            f"analogy file {location} has no questions (expected ': section' headers and lines 'a b c d')"
        )
    return AnalogyDataset(
        name, location, sections, questions, np.asarray(section_ids, dtype=np.int64), len(skipped)
    )


def read_similarity_file(file: EvalFile) -> SimilarityDataset:
    return parse_similarity_text(read_text(file.path), name=file.name, location=file.location)


def read_analogy_file(file: EvalFile) -> AnalogyDataset:
    return parse_analogy_text(read_text(file.path), name=file.name, location=file.location)
