"""The one barrier-training runner (:func:`embedpipe.methods.barrier.run_replicas`) that every PyTorch method
trains through: its result protocol, and a user error raised inside a replica's task reaching the job as the
job's one-line error, naming the job's key, once, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_watch_log
from embedpipe.errors import ConfigError, InputError

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--log-level", "ERROR"]
#: The keys a user sets for the step sizes (the one place to change if the settings move).
SGNS_STEP_SIZE = "sgns.step_size"
SOFTMAX_STEP_SIZE = "softmax.step_size"


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    """A tokenize output of 200 lines over 30 words: enough for sgns to run (and to diverge) in seconds."""
    import random

    root = tmp_path_factory.mktemp("barrier-tokens")
    rng = random.Random(1)
    words = [f"w{i}" for i in range(30)]
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choices(words, k=8)) for _ in range(200)) + "\n", encoding="utf-8")
    assert main(["tokenize", "--input", str(corpus), "--output", str(root / "tokens"), "--min-count", "1",
                 *QUIET]) == 0
    return root / "tokens"


def test_diverging_sgns_is_the_jobs_last_stderr_line_and_writes_nothing(tokens, tmp_path):
    # The real console script in its own process, at the default log levels: what a user sees, Spark's
    # JVM log included. Two replicas, so both the diverging task and its waiting peer fail.
    output = tmp_path / "table"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [str(Path(sys.executable).parent / "embedpipe"), "train", "--input", str(tokens), "--output",
               str(output), "--method", "sgns", "--dim", "8", "--device", "cpu", "--processes", "2",
               "--master", "local[2]", "--set", f"{SGNS_STEP_SIZE}=1e9"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3, done.stderr[-3000:]  # TrainingDivergedError's exit code
    assert lines[-1].startswith("embedpipe train: error: SGNS training diverged: the loss became "), lines[-1]
    assert f"config key '{SGNS_STEP_SIZE}'" in lines[-1] and "(now 1e+09)" in lines[-1]
    assert done.stderr.count("training diverged") == 1, done.stderr[-5000:]
    assert "Traceback" not in done.stderr and "Exception in task" not in done.stderr
    assert os.listdir(tmp_path) == []  # no table, no staging directory


@pytest.mark.parametrize("method", ["sgns", "fasttext"])
def test_sgns_ending_worse_than_untrained_vectors_fails_and_writes_nothing(method, tokens, tmp_path, capsys):
    # a finite loss far above untrained vectors' (6 ln 2 at 5 negatives): the vectors are random, so no table
    output = tmp_path / "runs" / "table"
    output.parent.mkdir()
    capsys.readouterr()
    argv = ["train", "--input", str(tokens), "--output", str(output), "--method", method, "--dim", "8",
            "--device", "cpu", "--processes", "1", "--set", "threads=1", "--set", f"{method}.step_size=5.0",
            "--set", f"{method}.epochs=2", *QUIET]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"embedpipe train: error: {method} training ended at a loss of "), err
    assert "above the 4.159 of untrained vectors" in err and err.rstrip().endswith(f"lower {method}.step_size"), err
    assert os.listdir(output.parent) == []


def test_softmax_task_error_is_the_same_one_line_error(tmp_path, capsys):
    info = generate_watch_log(tmp_path / "watch.csv", users=60, items=80, seed=2)
    histories = tmp_path / "histories"
    assert main(["histories", "--input", str(info.path), "--output", str(histories), *QUIET]) == 0
    output = tmp_path / "runs" / "table"
    output.parent.mkdir()
    capsys.readouterr()
    argv = ["train", "--input", str(histories), "--output", str(output), "--method", "softmax", "--dim", "4",
            "--device", "cpu", "--processes", "2", "--set", f"{SOFTMAX_STEP_SIZE}=1e30", "--set", "softmax.epochs=2",
            "--set", "softmax.batch_size=8", *QUIET]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("embedpipe train: error: softmax training diverged: the loss "), err
    assert err.rstrip().endswith(f"(set by config key '{SOFTMAX_STEP_SIZE}')")
    assert os.listdir(output.parent) == []


def test_run_replicas_returns_rank_0s_layers_and_raises_a_replicas_user_error(spark):
    from pyspark.sql import functions as F

    from embedpipe.methods.barrier import TaskOutput, run_replicas

    rows = spark.range(0, 50, numPartitions=3).select(F.col("id").alias("doc_id"), (F.col("id") * 10).alias("x"))

    def report(replica, batches, shared):  # a closure: pickled by value, as a method's task function would be
        seen = np.concatenate([batch.column("x").to_numpy() for batch in batches] or [np.zeros(0, np.int64)])
        if replica.rank != 0:
            return None
        vectors = np.arange(shared * 3, dtype=np.float32).reshape(shared, 3)
        return TaskOutput(info={"world": replica.world, "seen": seen, "device": replica.device},
                          vectors={"input": vectors, "output": -vectors[:, :2]})

    result = run_replicas(rows, report, processes=2, order_by="doc_id", device="cpu", method="sgns", shared=5)
    assert result.info["world"] == 2 and result.info["device"] == "cpu"
    seen = result.info["seen"]
    assert seen == sorted(seen) and 0 < len(seen) < 50  # rank 0's partition only, in doc_id order
    np.testing.assert_array_equal(result.matrix("input", 5, 3), np.arange(15, dtype=np.float32).reshape(5, 3))
    np.testing.assert_array_equal(result.matrix("output", 5, 2), -np.arange(15, dtype=np.float32).reshape(5, 3)[:, :2])
    assert result.info["entered"] >= result.started - 1 and result.seconds > 0
    with pytest.raises(RuntimeError, match="returned 5 input vectors for 6 keys"):
        result.matrix("input", 6, 3)

    def refuse(replica, batches, shared):
        list(batches)
        if replica.rank == 1:
            raise ConfigError("config key 'window' must be >= 1, got 0")
        return TaskOutput(info={}, vectors={})

    with pytest.raises(ConfigError) as caught:
        run_replicas(rows, refuse, processes=2, order_by="doc_id", device="cpu", method="sgns")
    assert str(caught.value) == "config key 'sgns.window' must be >= 1, got 0"

    def crash(replica, batches, shared):
        raise ZeroDivisionError("a bug, not a user error")

    with pytest.raises(Exception, match="ZeroDivisionError: a bug, not a user error") as caught:
        run_replicas(rows, crash, processes=1, order_by="doc_id", device="cpu", method="sgns")
    assert not isinstance(caught.value, InputError | ConfigError)  # a bug keeps Spark's full error
