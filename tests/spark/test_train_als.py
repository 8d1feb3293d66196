"""``train --method als|popularity``: the recommendation baselines as embedding tables, and ALS vs popularity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_watch_log
from embedpipe.table import read_embedding_table

QUIET = ["--log-level", "ERROR"]
LOG = """user,item
u1,a
u1,b
u1,a
u2,b
u2,c
u3,a
u3,c
u3,d
사용자,d
"""


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    root = tmp_path_factory.mktemp("als")
    (root / "log.csv").write_text(LOG, encoding="utf-8")
    assert main(["histories", "--input", str(root / "log.csv"), "--output", str(root / "histories"), *QUIET]) == 0
    return root / "histories"


def test_als_writes_item_factors_reproducibly(spark, histories, tmp_path):
    output = tmp_path / "als"
    argv = ["train", "--input", str(histories), "--output", str(output), "--method", "als", "--dim", "3",
            "--set", "als.iterations=4", "--set", "als.reg=0.1", "--set", "als.alpha=2", *QUIET]
    assert main(argv) == 0
    first = read_embedding_table(str(output))
    assert main(argv) == 0
    again = read_embedding_table(str(output))
    assert first.keys == again.keys == ["a", "b", "c", "d"]
    assert first.counts.tolist() == [3, 2, 2, 2]
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert first.vectors.shape == (4, 3) and np.all(np.isfinite(first.vectors)) and np.any(first.vectors != 0)
    manifest = first.manifest
    assert (manifest["method"], manifest["key_kind"], manifest["dim"], manifest["seed"]) == ("als", "item", 3, 42)
    assert {k: manifest["params"][k] for k in ("dim", "reg", "alpha", "iterations", "implicit_prefs")} == {
        "dim": 3, "reg": 0.1, "alpha": 2.0, "iterations": 4, "implicit_prefs": True}
    assert "device" not in manifest["params"] and "window" not in manifest["params"]  # only als's own settings


def test_popularity_is_a_one_dimensional_log_count(spark, histories, tmp_path):
    output = tmp_path / "popularity"
    argv = ["train", "--input", str(histories), "--output", str(output), "--method", "popularity", *QUIET]
    assert main(argv) == 0
    assert main(argv) == 0
    table = read_embedding_table(str(output))
    assert table.keys == ["a", "b", "c", "d"] and table.dim == 1
    np.testing.assert_allclose(table.vectors[:, 0], np.log1p([3, 2, 2, 2]), rtol=1e-6)
    assert table.manifest["params"]["scoring"] == "dot"


def test_als_beats_popularity_on_the_planted_watch_log(spark, tmp_path):
    """Users mostly watch one planted segment: ALS item factors recover it, popularity cannot."""
    info = generate_watch_log(tmp_path / "watch.csv", users=300, seed=3, items=120)
    histories = tmp_path / "histories"
    assert main(["histories", "--input", str(info.path), "--output", str(histories), "--holdout", "random",
                 "--holdout-items", "5", *QUIET]) == 0
    for method, extra in (("popularity", []), ("als", ["--dim", "8", "--set", "als.iterations=8"])):
        assert main(["train", "--input", str(histories), "--output", str(tmp_path / method), "--method", method,
                     *extra, *QUIET]) == 0
    report_dir = tmp_path / "report"
    assert main(["evaluate", "--table", str(tmp_path / "als"), "--compare", str(tmp_path / "popularity"),
                 "--histories", str(histories), "--output", str(report_dir), "--k-values", "20",
                 "--item-metadata", str(info.items_path), *QUIET]) == 0
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    als, popularity = report["recommendation"]["tables"]
    assert (als["method"], als["score"], popularity["method"], popularity["score"]) == (
        "als", "dot", "popularity", "dot")
    assert als["users_with_heldout"] == popularity["users_with_heldout"] == 300
    assert als["metrics"]["recall@20"] > popularity["metrics"]["recall@20"] + 0.05
    assert als["metrics"]["coverage@20"] > popularity["metrics"]["coverage@20"]
    assert report["item_map"]["axes"] == "2-D PCA of the unit vectors"
    assert "| als | 8 | dot |" in (report_dir / "report.md").read_text(encoding="utf-8")
