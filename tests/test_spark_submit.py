"""The jobs/ scripts run under spark-submit exactly like the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _spark_submit() -> str:
    path = Path(sys.executable).parent / "spark-submit"
    if not path.exists():
        pytest.skip("spark-submit is not installed beside this interpreter")
    return str(path)


def _submit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [_spark_submit(), "--master", "local[1]", "--conf", "spark.ui.enabled=false", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_tokenize_through_spark_submit(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\nthe dog sat\n서울 은 한국\n", encoding="utf-8")
    out = tmp_path / "tokens"
    result = _submit("jobs/tokenize.py", "--input", str(corpus), "--output", str(out), "--min-count", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for part in ("tokens", "vocab", "bow", "report.json"):
        assert (out / part).exists(), part

    missing = _submit("jobs/tokenize.py", "--input", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "x"))
    assert missing.returncode != 0
    # spark-submit's PythonRunner merges the driver's stderr into its own stdout.
    output = missing.stdout + missing.stderr
    assert f"embedpipe tokenize: error: input not found: {tmp_path / 'nope.txt'}" in output
    assert "Traceback" not in output
    assert not (tmp_path / "x").exists()
