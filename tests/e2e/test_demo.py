"""`embedpipe demo` end to end: its tables, reports and pictures, and the planted structure they show."""

from __future__ import annotations

import json

import pytest

from embedpipe.cli import main
from embedpipe.demo.pipeline import MOVIE_METHOD
from embedpipe.demo.vocabulary import ANIMALS, COUNTRY_TABLE
from embedpipe.table import read_embedding_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COUNTRIES = {row[0] for row in COUNTRY_TABLE}
CAPITALS = {row[1] for row in COUNTRY_TABLE}


def _segment_of(items_csv) -> dict[str, str]:
    rows = [line.split(",") for line in items_csv.read_text(encoding="utf-8").splitlines()[1:]]
    return {item: f"{audience}/{style}" for item, _title, audience, style in rows}


@pytest.mark.slow  # over 20 s: runs in CI's second (slow) pass
def test_demo_runs_twice_and_shows_planted_structure(spark, tmp_path, capsys):
    out = tmp_path / "demo"
    # The default corpus size: SGNS trains it in seconds; fewer documents blur the structure.
    # 1,200 users: on the long-tailed, drifting log 600 leave a segment's most-watched movie among popular others.
    argv = ["demo", "--output", str(out), "--users", "1200"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert first == second, "same seed, same data, same neighbours"
    assert sorted(p.name for p in out.iterdir()) == ["data", "histories", "reports", "tables", "tokens"]

    words = read_embedding_table(str(out / "tables" / "words"))
    movies = read_embedding_table(str(out / "tables" / "movies"))
    assert (words.manifest["method"], words.dim) == ("sgns", 50)
    assert (movies.manifest["method"], movies.manifest["key_kind"]) == (MOVIE_METHOD, "item")

    # The pictures exist, are PNGs and are named in the printed output; no lines for unmeasured sets.
    pictures = [out / "reports" / "movies" / "projection.png", out / "reports" / "countries_capitals.png"]
    for picture in pictures:
        assert picture.read_bytes()[:8] == PNG_MAGIC
        assert str(picture) in first
    assert "None" not in first and "wordsim" not in first.lower() and "simlex" not in first.lower()

    # Words: "vet" among the animals, countries among countries, the analogies and pairs as planted.
    report = json.loads((out / "reports" / "words" / "report.json").read_text())
    assert [s["name"] for s in report["similarity"]] == ["planted-similarity"]
    assert [a["name"] for a in report["analogies"]] == ["planted-analogies"]
    near = {p["key"]: [n["key"] for n in p["neighbours"]] for p in report["neighbours"]["probes"]}
    assert sum(key in ANIMALS for key in near["vet"]) >= 3, near["vet"]  # random vectors: ~0 of 5
    assert sum(key in COUNTRIES for key in near["france"]) >= 4, near["france"]
    assert sum(key in CAPITALS for key in near["paris"]) >= 4, near["paris"]
    planted = report["analogies"][0]
    assert planted["coverage"] > 0.9 and planted["accuracy"] > 0.8, planted["accuracy"]  # chance: < 0.001
    assert report["similarity"][0]["spearman"] > 0.4, report["similarity"][0]["spearman"]

    # Movies: each probe's neighbours mostly from its own (audience, style) segment (chance: 1 in 4).
    segment = _segment_of(out / "data" / "watch_log_items.csv")
    probes = json.loads((out / "reports" / "movies" / "report.json").read_text())["neighbours"]["probes"]
    assert len(probes) == 4
    own = [sum(segment[n["key"]] == segment[p["key"]] for n in p["neighbours"]) for p in probes]
    assert sum(own) >= 0.75 * 4 * len(probes[0]["neighbours"]), own
    item_map = json.loads((out / "reports" / "movies" / "report.json").read_text())["item_map"]
    assert item_map["linear_probe_accuracy"]["audience"] > 0.9


def test_demo_rejects_bad_size(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "d"), "--documents", "0"]) == 2
    assert capsys.readouterr().err.strip() == "embedpipe demo: error: config key 'documents' must be >= 10, got 0"
    assert not (tmp_path / "d").exists()
