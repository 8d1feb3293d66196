"""Faults lose nothing: a job SIGKILLed while it writes leaves the previous output byte for byte,
the rerun cleans up and writes what an uninterrupted run writes; outputs never replace anything but
an earlier output; nothing in the code base unpickles or evaluates data.

The killed runs are the real console script in its own process group (the driver, its JVM and the
JVM's Python workers), killed with SIGKILL as soon as the job's staging directory appears, i.e.
while it writes. The uninterrupted reference runs and the reruns go through ``main()`` in-process,
which saves a JVM start each.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality

from embedpipe.cli import main
from embedpipe.errors import OutputError
from embedpipe.storage import STAGING_MARK, atomic_output, check_output_path
from embedpipe.table import MANIFEST_FILE, read_manifest

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--log-level", "ERROR"]
KOREAN = ["서울", "한국", "부산", "김치"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """1,500 lines over a 120-word vocabulary (Korean included): small, but writing takes a few Spark jobs."""
    import random

    rng = random.Random(7)
    words = [f"w{i}" for i in range(116)] + KOREAN
    path = tmp_path_factory.mktemp("fault-corpus") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choices(words, k=8)) for _ in range(1500)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenized(spark, corpus, tmp_path_factory) -> Path:
    """An uninterrupted tokenize run: the reference for the tokenize test and the train input."""
    output = tmp_path_factory.mktemp("fault-reference") / "tokens"
    assert main(["tokenize", "--input", str(corpus), "--output", str(output), "--min-count", "1", *QUIET]) == 0
    return output


def _tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (hidden .crc files included) and its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table = _processes()
    found, pending = set(), [pid]
    while pending:
        parent = pending.pop()
        children = [child for child, (ppid, _) in table.items() if ppid == parent]
        found.update(children)
        pending.extend(children)
    return found


def _kill_while_writing(argv: list[str], output: Path, log: Path, timeout: float = 240.0) -> str:
    """Run ``embedpipe <argv>`` and SIGKILL its process group once the output's staging directory appears.

    Returns the staging directory's name. Fails if the job ends on its own first, and checks that
    every process the job started (the JVM's Python workers run in their own group) is gone.
    """
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [str(Path(sys.executable).parent / "embedpipe"), *argv, "--output", str(output),
               "--master", "local[2]", "--log-level", "WARNING"]
    prefix = output.name + STAGING_MARK
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    staging: list[str] = []
    started = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - started < timeout:
            staging = [name for name in os.listdir(output.parent) if name.startswith(prefix)]
            if staging:
                break
            time.sleep(0.01)
        family = _descendants(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert staging, f"the job ended (rc={process.returncode}) before writing:\n{log.read_text()[-3000:]}"
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while (alive := {pid for pid, (_, state) in _processes().items() if pid in family and state != "Z"}) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, f"processes of the killed job still running: {sorted(alive)}"
    return staging[0]


def _assert_same_tokenize_output(spark, output: Path, reference: Path) -> None:
    for part in ("tokens", "vocab", "bow"):
        assert_df_equality(spark.read.parquet(str(output / part)), spark.read.parquet(str(reference / part)),
                           ignore_row_order=True)
    reports = [json.loads((path / "report.json").read_text()) for path in (output, reference)]
    for report in reports:
        report.pop("stages")  # seconds per stage differ run to run; everything else must not
    assert reports[0] == reports[1]


@pytest.mark.slow  # over 20 s: runs in CI's second (slow) pass
def test_tokenize_killed_while_writing_loses_nothing(spark, corpus, tokenized, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    output = runs / "tokens"
    argv = ["tokenize", "--input", str(corpus), "--min-count", "1"]

    # 1. No previous version: nothing appears at the output path.
    stale = _kill_while_writing(argv, output, tmp_path / "kill1.log")
    assert not output.exists()
    assert os.listdir(runs) == [stale]
    assert main([*argv, "--output", str(output), *QUIET]) == 0
    _assert_same_tokenize_output(spark, output, tokenized)
    assert os.listdir(runs) == ["tokens"], "the rerun removed the killed run's staging directory"

    # 2. A previous version exists: it stays byte for byte.
    before = _tree(output)
    stale = _kill_while_writing(argv, output, tmp_path / "kill2.log")
    assert _tree(output) == before
    assert sorted(os.listdir(runs)) == sorted(["tokens", stale])
    assert main([*argv, "--output", str(output), *QUIET]) == 0
    _assert_same_tokenize_output(spark, output, tokenized)
    assert os.listdir(runs) == ["tokens"]


def test_train_killed_while_writing_keeps_the_previous_table(spark, tokenized, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    table = runs / "table"
    reference = tmp_path / "reference"
    argv = ["train", "--input", str(tokenized), "--method", "pca", "--dim", "4"]
    assert main([*argv, "--output", str(reference), *QUIET]) == 0
    assert main([*argv, "--output", str(table), *QUIET]) == 0
    before, manifest = _tree(table), read_manifest(str(table))

    stale = _kill_while_writing(argv, table, tmp_path / "kill.log")
    assert _tree(table) == before
    assert read_manifest(str(table)) == manifest
    assert sorted(os.listdir(runs)) == sorted(["table", stale])

    assert main([*argv, "--output", str(table), *QUIET]) == 0
    assert os.listdir(runs) == ["table"]
    assert_df_equality(spark.read.parquet(str(table)), spark.read.parquet(str(reference)), ignore_row_order=True,
                       ignore_metadata=True)  # the footer metadata holds the manifest and its created_at
    rerun = read_manifest(str(table))
    assert {**rerun, "created_at": None} == {**manifest, "created_at": None}


def test_commit_interrupted_between_its_renames_restores_the_previous_version(spark, tmp_path):
    # A kill between "target -> previous" and "staging -> target" leaves only these two behind.
    previous = tmp_path / "out.__embedpipe_previous-0123456789ab"
    previous.mkdir()
    (previous / "report.json").write_text("last good\n")
    staging = tmp_path / "out.__embedpipe_staging-0123456789ab"
    staging.mkdir()
    with pytest.raises(RuntimeError):
        with atomic_output(spark, str(tmp_path / "out")):
            raise RuntimeError("the next run fails too")
    assert os.listdir(tmp_path) == ["out"]
    assert (tmp_path / "out" / "report.json").read_text() == "last good\n"


# ----------------------------------------------------------------------------- output path safety


def test_output_path_checks(spark, tmp_path):
    corpus = tmp_path / "data" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "a.txt").write_text("keep me\n")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "report.json").write_text("{}\n")
    inputs = [str(corpus)]
    cases = {
        "/": "output path / is the root of its filesystem; name a directory below it",
        "file:///": "output path file:/// is the root of its filesystem; name a directory below it",
        str(corpus): f"output path {corpus} is the job's input; write the output somewhere else",
        f"{corpus}/": f"output path {corpus}/ is the job's input; write the output somewhere else",
        str(tmp_path / "data"): f"output path {tmp_path / 'data'} contains the job's input {corpus}; "
                                "replacing it would delete it",
        str(corpus / "out"): f"output path {corpus / 'out'} is inside the job's input {corpus}; "
                             "write it somewhere else",
        str(corpus / "a.txt"): f"output path {corpus / 'a.txt'} is inside the job's input {corpus}; "
                               "write it somewhere else",
        str(foreign): f"output path {foreign} is a non-empty directory without report.json, _manifest.json or "
                      "_SUCCESS (not an earlier output); refusing to replace it",
    }
    for output, message in cases.items():
        with pytest.raises(OutputError) as caught:
            check_output_path(spark, output, inputs=inputs)
        assert str(caught.value) == message
    with pytest.raises(OutputError, match=r"without _manifest.json \(not an earlier output\)"):
        check_output_path(spark, str(earlier), markers=(MANIFEST_FILE,))
    assert check_output_path(spark, str(earlier)) == f"file:{earlier}"
    assert check_output_path(spark, str(tmp_path / "new")) == f"file:{tmp_path / 'new'}"
    assert sorted(os.listdir(tmp_path)) == ["data", "earlier", "photos"]
    assert (corpus / "a.txt").read_text() == "keep me\n" and (foreign / "cat.jpg").read_bytes() == b"\xff\xd8"


def test_jobs_refuse_outputs_that_would_delete_other_data(spark, capsys, tokenized, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the cat sat\nthe dog sat\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not an embedpipe output\n")
    before = _tree(tmp_path)
    cases = [
        (["tokenize", "--input", str(corpus), "--output", str(other)],
         f"output path {other} is a non-empty directory without report.json, _manifest.json or _SUCCESS "
         "(not an earlier output); refusing to replace it"),
        (["tokenize", "--input", str(corpus), "--output", str(corpus)],
         f"output path {corpus} is the job's input; write the output somewhere else"),
        (["tokenize", "--input", str(corpus / "a.txt"), "--output", str(tmp_path)],
         f"output path {tmp_path} contains the job's input {corpus / 'a.txt'}; replacing it would delete it"),
        (["tokenize", "--input", str(corpus / "a.txt"), "--output", str(corpus / "a.txt" / "out")],
         f"output path {corpus / 'a.txt' / 'out'} is inside the job's input {corpus / 'a.txt'}; write it somewhere "
         "else"),
        # A table may only replace a table: never the tokenize output it is trained from, nor another folder.
        (["train", "--input", str(tokenized), "--output", str(tokenized), "--method", "pca", "--dim", "2"],
         f"output path {tokenized} is the job's input; write the output somewhere else"),
        (["tokenize", "--input", str(corpus / "a.txt"), "--output", str(corpus)],
         f"output path {corpus} contains the job's input {corpus / 'a.txt'}; replacing it would delete it"),
    ]
    reference = _tree(tokenized)
    for argv, message in cases:
        assert main([*argv, *(["--set", "min_count=1"] if argv[0] == "tokenize" else []), *QUIET]) == 2
        assert capsys.readouterr().err == f"embedpipe {argv[0]}: error: {message}\n"
    assert _tree(tmp_path) == before
    assert _tree(tokenized) == reference


# ----------------------------------------------------------------------------- no code from data


def _imported_names(tree: ast.AST, modules: set[str]) -> set[str]:
    """Local names bound to ``modules`` or to functions imported from them."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.asname or a.name for a in node.names if a.name.split(".")[0] in modules)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in modules:
            names.update(f"from:{a.asname or a.name}" for a in node.names)
    return names


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str) -> list[str]:
    """``line: call`` for every call that can run code from the data it loads."""
    tree = ast.parse(source)
    pickle_like = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
    pickled = _imported_names(tree, pickle_like)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = ast.unparse(func)
        owner = dotted.rsplit(".", 1)[0] if "." in dotted else ""
        attr = dotted.rsplit(".", 1)[-1]
        unsafe = False
        if isinstance(func, ast.Name) and func.id in ("eval", "exec", "compile", "__import__"):
            unsafe = True
        elif attr in ("load", "loads", "Unpickler", "open") and (owner in pickled or owner.split(".")[0] in pickled):
            unsafe = True
        elif isinstance(func, ast.Name) and f"from:{func.id}" in pickled:
            unsafe = True
        elif attr == "read_pickle":
            unsafe = True
        elif dotted in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            unsafe = loader is None or "Safe" not in ast.unparse(loader)
        elif dotted == "torch.load":
            weights_only = _keyword(node, "weights_only")
            unsafe = not (isinstance(weights_only, ast.Constant) and weights_only.value is True)
        elif attr == "load" and owner in ("np", "numpy"):
            allow = _keyword(node, "allow_pickle")
            unsafe = isinstance(allow, ast.Constant) and allow.value is True
        if unsafe:
            found.append(f"{node.lineno}: {dotted}")
    return found


def test_the_scanner_finds_every_kind_of_unsafe_call():
    source = """
import pickle as p
import yaml, torch, numpy as np, pandas as pd
from dill import loads
p.loads(b"")
loads(b"")
eval("1")
exec("x = 1")
yaml.load(s)
yaml.load(s, Loader=yaml.SafeLoader)
torch.load("m.pt")
torch.load("m.pt", weights_only=False)
torch.load("m.pt", map_location="cpu", weights_only=True)
np.load("a.npy", allow_pickle=True)
np.load("a.npy")
pd.read_pickle("f")
json.loads("{}")
"""
    assert unsafe_calls(source) == [
        "5: p.loads", "6: loads", "7: eval", "8: exec", "9: yaml.load", "11: torch.load", "12: torch.load",
        "14: np.load", "16: pd.read_pickle",
    ]


def test_no_module_loads_pickles_or_evaluates_code():
    files = sorted([*ROOT.joinpath("embedpipe").rglob("*.py"), *ROOT.joinpath("jobs").rglob("*.py")])
    assert len(files) > 20
    found = {str(path.relative_to(ROOT)): calls for path in files
             if (calls := unsafe_calls(path.read_text(encoding="utf-8")))}
    assert found == {}
