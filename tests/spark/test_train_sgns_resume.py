"""`train --method sgns --checkpoint-dir D [--resume]`: a killed job resumes and writes the same table.

The job runs as a real subprocess (``python -m embedpipe.cli train``), is SIGKILLed as soon as the
first epoch's checkpoint exists, and is then resumed in-process; on CPU the resumed table must equal
an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_corpus
from embedpipe.errors import ConfigError, InputError
from embedpipe.jobconfig import TokenizeConfig, TrainConfig
from embedpipe.table import read_embedding_table
from embedpipe.text.pipeline import run_tokenize

torch = pytest.importorskip("torch")

from embedpipe.methods.sgns import _prepare_checkpoints, sgns_params  # noqa: E402
from embedpipe.torchtrain import SGNSParams, TrainingState  # noqa: E402
from embedpipe.torchtrain.model import CHECKPOINT_NAME, load_checkpoint, save_checkpoint  # noqa: E402

# Heavy enough per token (dim 64, window 8, 10 noise words, no subsampling) that one epoch takes
# seconds on a small corpus: the kill must land between the first checkpoint and the end.
SGNS = ["--method", "sgns", "--dim", "64", "--set", "sgns.epochs=3", "--set", "sgns.window=8",
        "--set", "sgns.negative=10", "--set", "sgns.sample=0", "--threads", "1", "--device", "cpu", "--seed", "9"]
KILL_TIMEOUT = 900.0  # seconds to wait for the first checkpoint (generous: CI machines can be loaded)


@pytest.fixture(scope="module")
def tokens(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    info = generate_corpus(root / "corpus.txt", documents=12_000, seed=2)
    run_tokenize(spark, TokenizeConfig(input=str(info.path), output=str(root / "tokens"), min_count=2))
    return root / "tokens"


def _kill_after_first_checkpoint(argv: list[str], checkpoint: Path) -> None:
    """Run ``embedpipe`` in a new process group and SIGKILL the whole group once ``checkpoint`` exists."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "embedpipe.cli", *argv, "--master", "local[1]"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + KILL_TIMEOUT
        while not checkpoint.exists():
            assert process.poll() is None, f"the job ended (exit {process.returncode}) before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver, its JVM and the Python workers
        process.wait()


@pytest.mark.slow  # over 20 s: runs in CI's second (slow) pass
def test_killed_job_resumes_to_the_uninterrupted_table(tokens, tmp_path, capsys):
    reference, output, checkpoints = tmp_path / "reference", tmp_path / "table", tmp_path / "checkpoints"
    assert main(["train", "--input", str(tokens), "--output", str(reference), *SGNS]) == 0
    argv = ["train", "--input", str(tokens), "--output", str(output), *SGNS, "--checkpoint-dir", str(checkpoints)]

    _kill_after_first_checkpoint(argv, checkpoints / "replica-0" / CHECKPOINT_NAME)
    assert not output.exists()

    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resume: resuming from checkpoints in {checkpoints.resolve()} after epoch " in err
    resumed, uninterrupted = read_embedding_table(str(output)), read_embedding_table(str(reference))
    assert resumed.keys == uninterrupted.keys
    np.testing.assert_array_equal(resumed.vectors, uninterrupted.vectors)
    assert resumed.manifest["params"]["epochs"] == 3


def test_resume_with_other_params_is_refused(tokens, tmp_path, capsys):
    checkpoints = tmp_path / "checkpoints"
    short = [("sgns.epochs=1" if arg == "sgns.epochs=3" else arg) for arg in SGNS]
    first = tmp_path / "first"
    assert main(["train", "--input", str(tokens), "--output", str(first), *short,
                 "--checkpoint-dir", str(checkpoints)]) == 0
    saved = checkpoints.resolve() / "replica-0" / CHECKPOINT_NAME
    assert saved.is_file()

    out = tmp_path / "table"
    capsys.readouterr()
    assert main(["train", "--input", str(tokens), "--output", str(out), *short, "--set", "sgns.negative=7",
                 "--checkpoint-dir", str(checkpoints), "--resume"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedpipe train: error:")]
    assert errors == [
        f"embedpipe train: error: config key 'sgns.negative' is 7 but checkpoint {saved} was trained with 10; "
        "use the same value or start without resume"
    ]
    assert not out.exists()

    assert main(["train", "--input", str(tokens), "--output", str(out), *short, "--set", "sgns.step_size=0.025",
                 "--checkpoint-dir", str(checkpoints), "--resume"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedpipe train: error:")]
    assert errors == [
        f"embedpipe train: error: config key 'sgns.step_size' is 0.025 but checkpoint {saved} was trained with 0.05; "
        "use the same value or start without resume"
    ]
    assert main(["train", "--input", str(tokens), "--output", str(out), *short, "--resume"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedpipe train: error:")]
    assert errors == ["embedpipe train: error: config key 'resume' needs checkpoint_dir (where the checkpoints are)"]
    assert not out.exists()


def _config(checkpoints: Path, **overrides) -> TrainConfig:
    values = dict(input="in", output="out", method="sgns", dim=8, seed=4, checkpoint_dir=str(checkpoints),
                  settings={"epochs": 3})
    values.update(overrides)
    return TrainConfig(**values)


def _save(checkpoints: Path, rank: int, epoch: int, params: SGNSParams, vocab_size: int = 6) -> None:
    state = TrainingState.initial(vocab_size, params)
    state.epoch = epoch
    state.w_in += rank  # tell the replicas apart
    save_checkpoint(checkpoints / f"replica-{rank}", state, params)


def test_replicas_resume_from_the_most_advanced_one(tmp_path, caplog):
    """Killed between two replicas' saves: the one behind resumes from the other's (identical) state."""
    config = _config(tmp_path, processes=3, resume=True)
    params = SGNSParams(**sgns_params(config))
    _save(tmp_path, 0, 1, params)
    _save(tmp_path, 1, 2, params)  # replica 2 never saved
    with caplog.at_level("INFO", logger="embedpipe.methods.sgns"):
        checkpoints = _prepare_checkpoints(config, params, 6, "sgns")
    assert checkpoints.resume_epoch == 2 and checkpoints.directory == str(tmp_path.resolve())
    for rank in (0, 2):
        state = load_checkpoint(checkpoints.replica_dir(rank), params, 6)
        assert state.epoch == 2 and torch.equal(state.w_in, load_checkpoint(tmp_path / "replica-1", params, 6).w_in)
    assert "replica 0 had epoch 1; it resumes from replica 1's state after epoch 2" in caplog.text
    assert "replica 2 had no checkpoint; it resumes from replica 1's state after epoch 2" in caplog.text

    with pytest.raises(ConfigError, match="config key 'processes' is 2 but checkpoint_dir .* holds checkpoints of 3"):
        _prepare_checkpoints(_config(tmp_path, processes=2, resume=True), params, 6, "sgns")
    with pytest.raises(InputError, match="holds 6 x 8 vectors but this run has 7 words x dim 8"):
        _prepare_checkpoints(config, params, 7, "sgns")


def test_a_fresh_run_clears_old_checkpoints(tmp_path):
    config = _config(tmp_path, processes=2)
    params = SGNSParams(**sgns_params(config))
    _save(tmp_path, 0, 1, params)
    _save(tmp_path, 1, 1, params)
    (tmp_path / "notes.txt").write_text("kept")
    assert _prepare_checkpoints(config, params, 6, "sgns").resume_epoch == 0
    assert not list(tmp_path.glob(f"replica-*/{CHECKPOINT_NAME}")) and (tmp_path / "notes.txt").exists()
    nothing = _prepare_checkpoints(_config(tmp_path, resume=True), params, 6, "sgns")
    assert nothing.resume_epoch == 0  # nothing to resume
    with pytest.raises(ConfigError, match="config key 'checkpoint_dir' must be a local or mounted shared directory"):
        _prepare_checkpoints(_config(tmp_path, checkpoint_dir="hdfs://nn/ckpt"), params, 6, "sgns")
