"""``tokenizer = "kiwi"``: Korean eojeol become morphemes in the tokenize job; a clear error without the extra."""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq
import pytest

from embedpipe.cli import main
from embedpipe.jobconfig import TokenizerSettings
from embedpipe.text.tokenizer import tokenize_text

QUIET = ["--log-level", "ERROR"]
LINES = ["고양이가 밥을 먹었다.", "NASA는 2024년에 고양이를 샀다!", "고양이는 귀엽다"]


def test_kiwi_splits_eojeol_and_drops_particles_unless_kept():
    pytest.importorskip("kiwipiepy", reason="the 'korean' extra (kiwipiepy) is not installed")
    dropped = tokenize_text(LINES[1], TokenizerSettings(tokenizer="kiwi"))
    kept = tokenize_text(LINES[1], TokenizerSettings(tokenizer="kiwi", keep_particles=True))
    assert dropped[:4] == ["nasa", "2024", "년", "고양이"]  # Latin and digits inside Korean stay; 는, 에, 를 go
    assert {"는", "에", "를"} <= set(kept) and not {"는", "에", "를"} & set(dropped)
    assert "!" not in dropped and set(dropped) < set(kept)


@pytest.mark.slow
def test_tokenize_job_with_kiwi_gives_one_noun_for_its_inflected_eojeol(spark, tmp_path):
    pytest.importorskip("kiwipiepy", reason="the 'korean' extra (kiwipiepy) is not installed")
    (tmp_path / "corpus.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "tokens"
    assert main(["tokenize", "--input", str(tmp_path / "corpus.txt"), "--output", str(out), "--min-count", "1",
                 "--tokenizer", "kiwi", *QUIET]) == 0
    docs = pq.read_table(str(out / "tokens")).sort_by("doc_id").column("tokens").to_pylist()
    assert docs == [tokenize_text(line, TokenizerSettings(tokenizer="kiwi")) for line in LINES]
    assert all(doc.count("고양이") == 1 for doc in docs)  # 고양이가 / 고양이를 / 고양이는: one token
    report = json.loads((out / "report.json").read_text())
    assert report["tokenizer"]["tokenizer"] == "kiwi" and report["tokenizer"]["keep_particles"] is False


def test_kiwi_without_the_extra_is_one_line_naming_it(spark, capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # import kiwipiepy now raises ImportError
    (tmp_path / "corpus.txt").write_text(LINES[0] + "\n", encoding="utf-8")
    out = tmp_path / "tokens"
    capsys.readouterr()
    assert main(["tokenize", "--input", str(tmp_path / "corpus.txt"), "--output", str(out), "--tokenizer", "kiwi",
                 *QUIET]) == 2
    assert capsys.readouterr().err == ("embedpipe tokenize: error: config key 'tokenizer' is kiwi but kiwipiepy is "
                                       "not installed: install the 'korean' extra (pip install 'embedpipe[korean]')\n")
    assert not out.exists()


def test_keep_particles_needs_kiwi(spark, capsys, tmp_path):
    (tmp_path / "corpus.txt").write_text(LINES[0] + "\n", encoding="utf-8")
    out = tmp_path / "tokens"
    capsys.readouterr()
    assert main(["tokenize", "--input", str(tmp_path / "corpus.txt"), "--output", str(out), "--set",
                 "keep_particles=true", *QUIET]) == 2
    assert capsys.readouterr().err == ("embedpipe tokenize: error: config key 'keep_particles' needs tokenizer = kiwi "
                                       "(the regex tokenizer keeps particles attached to their word)\n")
    assert not out.exists()
