"""`train --method sgns`: the PyTorch trainer run in Spark barrier tasks, 1 and 2 replicas (and the
context vectors exported with ``sgns.export_output_vectors``)."""

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

SGNS = ["--method", "sgns", "--dim", "24", "--set", "sgns.epochs=3", "--set", "sgns.window=5",
        "--set", "sgns.negative=5", "--set", "sgns.step_size=0.025", "--threads", "1", "--device", "cpu", "--seed", "3"]


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
    params = first.manifest["params"]
    assert (params["negative"], params["epochs"], params["step_size"], params["processes"]) == (5, 3, 0.025, 1)
    # the common keys, sgns's own settings and what it resolved; no other method's keys, no removed options
    assert {"dim", "seed", "device", "threads", "window", "sample", "min_step_size", "deterministic"} <= set(params)
    assert not set(params) & {"partitions", "max_exp", "step_cap", "cuda_kernel", "lr", "bag_epochs", "reg"}
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
                 "--set", f"sgns.export_output_vectors={context}"]) == 0
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
                 "--set", "sgns.min_step_size=0.5"]) == 2
    err = capsys.readouterr().err
    assert "embedpipe train: error: config key 'sgns.min_step_size' must be <= sgns.step_size" in err
    assert main(["train", "--input", str(root / "tokens"), "--output", str(out), "--method", "sgns",
                 "--min-lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err == "embedpipe train: error: config key 'min_lr' moved: use 'sgns.min_step_size' ([train.sgns])\n"
    assert not out.exists()


def test_a_toml_with_a_method_table_trains_through_main(planted, tmp_path):
    """[train] + [train.sgns] in a file (with another method's table, ignored), a --set on top."""
    root, _ = planted
    conf, out = tmp_path / "train.toml", tmp_path / "table"
    conf.write_text('[train]\nmethod = "sgns"\ndim = 12\nseed = 4\ndevice = "cpu"\nthreads = 1\n'
                    '[train.sgns]\nepochs = 1\nnegative = 3\n[train.word2vec]\npartitions = 8\n', encoding="utf-8")
    assert main(["train", "--config", str(conf), "--input", str(root / "tokens"), "--output", str(out),
                 "--set", "sgns.window=3", "--log-level", "ERROR"]) == 0
    table = read_embedding_table(str(out))
    assert (table.manifest["method"], table.dim, table.manifest["seed"]) == ("sgns", 12, 4)
    params = table.manifest["params"]
    assert (params["epochs"], params["negative"], params["window"], params["step_size"]) == (1, 3, 3, 0.05)
    assert "partitions" not in params


def test_the_job_passes_every_setting_to_the_core():
    """Each method's defaults are the job's: nothing is left to SGNSParams' own defaults."""
    import dataclasses

    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.item2vec import item2vec_params
    from embedpipe.methods.sgns import sgns_params
    from embedpipe.torchtrain import SGNSParams

    def config(method: str, **settings) -> TrainConfig:
        return TrainConfig(input="in", output="out", method=method, seed=3, settings=settings)

    every = {f.name for f in dataclasses.fields(SGNSParams)}
    assert set(sgns_params(config("sgns"))) == every
    assert set(item2vec_params(config("item2vec"), 1, interactions=10**6)) == every
    # sgns: fastText's 0.05; item2vec keeps the 0.025 it was measured at, without subsampling
    assert SGNSParams(**sgns_params(config("sgns"))).lr == 0.05
    item2vec = SGNSParams(**item2vec_params(config("item2vec"), 1, interactions=10**6))
    assert (item2vec.lr, item2vec.sample, item2vec.shrink_window, item2vec.seed) == (0.025, 0.0, False, 3)
    assert SGNSParams(**sgns_params(config("sgns", step_size=0.01, epochs=2))).lr == 0.01
    assert SGNSParams(**item2vec_params(config("item2vec", epochs=2), 1, interactions=10**6)).epochs == 2
