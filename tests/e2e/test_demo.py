"""`embedpipe demo` end to end on a small generated dataset."""

from __future__ import annotations

import json

from embedpipe.cli import main
from embedpipe.table import read_embedding_table


def test_demo_runs_twice_and_shows_planted_structure(spark, tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--output", str(out), "--documents", "3000", "--users", "300", "--dim", "16", "--epochs", "2"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert first == second, "same seed, same data, same neighbours"
    assert "Nearest neighbours in the word table" in first and "france:" in first

    words = read_embedding_table(str(out / "tables" / "words"))
    movies = read_embedding_table(str(out / "tables" / "movies"))
    assert words.manifest["method"] == "word2vec" and words.dim == 16
    assert movies.manifest["key_kind"] == "item"
    for report in ("words", "movies"):
        assert (out / "reports" / report / "projection.png").exists()
    report = json.loads((out / "reports" / "words" / "report.json").read_text())
    planted = next(a for a in report["analogies"] if a["name"] == "planted-analogies")
    assert planted["coverage"] > 0.8
    assert planted["accuracy"] > 0.03, planted["accuracy"]  # chance is ~1/vocabulary (< 0.005)
    assert sorted(p.name for p in out.iterdir()) == ["data", "histories", "reports", "tables", "tokens"]


def test_demo_rejects_bad_size(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "d"), "--documents", "0"]) == 2
    assert capsys.readouterr().err.strip() == "embedpipe demo: error: config key 'documents' must be >= 10, got 0"
    assert not (tmp_path / "d").exists()
