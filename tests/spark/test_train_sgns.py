"""`train --method sgns`: the PyTorch trainer run in Spark barrier tasks, 1 and 2 replicas (and the
context vectors exported with ``export_output_vectors``)."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_corpus
from embedpipe.evaluate import VectorIndex, nearest_neighbours
from embedpipe.jobconfig import TokenizeConfig
from embedpipe.table import read_embedding_table
from embedpipe.text.pipeline import run_tokenize

pytest.importorskip("torch")

SGNS = ["--method", "sgns", "--dim", "24", "--epochs", "3", "--window", "5", "--negative", "5",
        "--step-size", "0.025", "--threads", "1", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def planted(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("sgns")
    info = generate_corpus(root / "corpus.txt", documents=4000, seed=11)
    run_tokenize(spark, TokenizeConfig(input=str(info.path), output=str(root / "tokens"), min_count=3))
    return root, info


def _country_purity(table_path: str, info) -> float:
    """Share of each country's 5 nearest neighbours that are countries (chance: ~20/vocabulary)."""
    table = read_embedding_table(table_path)
    countries = set(info.capitals)
    found = nearest_neighbours(VectorIndex.from_table(table), sorted(countries), k=5)
    hits = [n["key"] in countries for p in found["probes"] for n in p["neighbours"]]
    return float(np.mean(hits))


def test_sgns_one_replica_twice_is_reproducible_and_recovers_planting(spark, planted, tmp_path):
    root, info = planted
    out = tmp_path / "table"
    argv = ["train", "--input", str(root / "tokens"), "--output", str(out), *SGNS]
    assert main(argv) == 0
    first = read_embedding_table(str(out))
    assert main(argv) == 0
    second = read_embedding_table(str(out))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert first.manifest["method"] == "sgns" and first.dim == 24
    assert first.manifest["params"]["negative"] == 5 and first.manifest["params"]["processes"] == 1
    assert first.manifest["params"]["max_exp"] == 6.0  # gensim's rule for saturated terms, recorded
    assert first.manifest["params"]["step_cap"] == "row"
    assert first.manifest["params"]["cuda_kernel"] == "auto"  # recorded, though this run was on CPU
    # 'auto' settings are recorded as the trainer resolved them
    assert {k: first.manifest["params"][k] for k in ("step", "batch_size", "trained_on")} == {
        "step": "pairwise", "batch_size": 1024, "trained_on": "cpu"}
    assert first.manifest["tokenizer"]["lowercase"] is True
    vocab = spark.read.parquet(str(root / "tokens" / "vocab")).orderBy("id").toPandas()
    assert first.keys == list(vocab["token"]) and list(first.ids) == list(vocab["id"])
    assert _country_purity(str(out), info) > 0.6


def test_sgns_two_replicas_close_to_one(spark, planted, tmp_path):
    root, info = planted
    one, two, context = tmp_path / "one", tmp_path / "two", tmp_path / "two-output"
    assert main(["train", "--input", str(root / "tokens"), "--output", str(one), *SGNS]) == 0
    assert main(["train", "--input", str(root / "tokens"), "--output", str(two), *SGNS, "--processes", "2",
                 "--export-output-vectors", str(context)]) == 0
    single, double = read_embedding_table(str(one)), read_embedding_table(str(two))
    assert double.keys == single.keys and double.manifest["params"]["processes"] == 2
    assert np.isfinite(double.vectors).all()
    assert _country_purity(str(two), info) >= _country_purity(str(one), info) - 0.15
    # the context vectors of the synced replicas: same keys, a valid table, not the input vectors
    output = read_embedding_table(str(context))
    assert output.keys == double.keys and list(output.counts) == list(double.counts) and output.dim == 24
    assert output.manifest["params"]["layer"] == "output (context vectors)"
    assert output.manifest["params"]["processes"] == 2 and output.manifest["method"] == "sgns"
    assert np.isfinite(output.vectors).all() and not np.allclose(output.vectors, double.vectors)


def test_sgns_bad_settings(planted, tmp_path, capsys):
    root, _ = planted
    out = tmp_path / "t"
    assert main(["train", "--input", str(root / "tokens"), "--output", str(out), "--method", "sgns",
                 "--min-lr", "0.5"]) == 2
    assert "embedpipe train: error: config key 'min_lr'" in capsys.readouterr().err
    assert not out.exists()


def test_step_size_defaults_to_each_methods_own_and_a_set_value_wins():
    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.item2vec import item2vec_params
    from embedpipe.methods.sgns import sgns_params
    from embedpipe.torchtrain import SGNSParams

    def config(method: str, **values) -> TrainConfig:
        return TrainConfig(input="in", output="out", method=method, **values)

    # sgns: fastText's 0.05 (the trainer's default); item2vec keeps the 0.025 it was measured at
    assert SGNSParams(**sgns_params(config("sgns"))).lr == SGNSParams().lr == 0.05
    assert SGNSParams(**item2vec_params(config("item2vec"), 1, interactions=10**6)).lr == 0.025
    assert SGNSParams(**sgns_params(config("sgns", step_size=0.01))).lr == 0.01
    assert SGNSParams(**item2vec_params(config("item2vec", step_size=0.01), 1, interactions=10**6)).lr == 0.01
