"""The jobs on a real Spark standalone cluster (a master and two 1-core workers on 127.0.0.1).

embedpipe is shipped exactly as the README's "Running on a cluster" section tells users: a wheel of
the checkout passed with ``--py-files`` to ``spark-submit --master spark://...``. The module starts
one cluster (tests/standalone.py) and always stops it by process group, also when a test fails.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality
from standalone import StandaloneCluster, java_available, spark_home

from embedpipe.cli import main as cli
from embedpipe.demo.generator import (
    generate_corpus,
    generate_watch_log,
    write_analogy_file,
    write_similarity_file,
)
from embedpipe.methods.pipeline import METHODS
from embedpipe.table import read_embedding_table, read_manifest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: the files pyproject.toml packages (copied so the build never writes
# build/ or *.egg-info into the checkout other processes are using).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "embedpipe")
SUBMIT_TIMEOUT = 300


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A master and two workers (1 core, 1g each); stopped by process group whatever happens."""
    if not java_available():
        pytest.skip("Java is not installed (no JAVA_HOME/bin/java, no java on PATH): cannot start a Spark cluster")
    standalone = StandaloneCluster(tmp_path_factory.mktemp("standalone"), workers=2, cores=1, memory="1g")
    atexit.register(standalone.stop)  # a hard interpreter exit still stops the JVMs
    try:
        standalone.start()
        yield standalone
    finally:
        standalone.stop()
        atexit.unregister(standalone.stop)
    leftovers = standalone.leftover_processes()
    assert not leftovers, f"processes of the test cluster still alive after stop(): {leftovers}"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of the checkout, offline (no build isolation: setuptools comes from this venv)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(root / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = (root / "dist").glob("embedpipe-*-py3-none-any.whl")
    return built


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    """A small planted corpus (with its analogy and similarity files) and a watch log."""
    root = tmp_path_factory.mktemp("cluster-data")
    info = generate_corpus(root / "corpus.txt", documents=3000, seed=7)
    log = generate_watch_log(root / "watch_log.csv", users=300, seed=7)
    return {
        "root": root,
        "corpus": info.path,
        "analogies": write_analogy_file(root / "analogies.txt", info),
        "similarity": write_similarity_file(root / "similarity.tsv", info),
        "watch_log": log.path,
    }


def _submit_command(cluster: StandaloneCluster, wheel: Path, job: str, *args: str) -> list[str]:
    """The README's command: spark-submit --master spark://... --py-files <wheel> jobs/<job>.py ..."""
    return [
        str(spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url,
        "--py-files", str(wheel),
        "--executor-memory", "512m", "--driver-memory", "512m",
        "--conf", "spark.ui.enabled=false",
        f"jobs/{job}.py", "--config", "conf/cluster.toml",
        # Test-sized data: a few shuffle partitions instead of the file's 200.
        "--set", "spark.shuffle_partitions=4", *args,
    ]


def _submit(cluster: StandaloneCluster, wheel: Path, job: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_submit_command(cluster, wheel, job, *args), cwd=ROOT, env=cluster.spark_env(),
                          capture_output=True, text=True, timeout=SUBMIT_TIMEOUT)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    """Assert exit 0 and return the app id the driver registered with the master."""
    output = result.stdout + result.stderr
    # The driver's own stderr (embedpipe's error line) is merged into spark-submit's stdout.
    shown = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-2000:]}"
    assert result.returncode == 0, shown
    assert "Traceback" not in output, shown
    return _app_id(output)


def _app_id(output: str) -> str:
    # Logged by StandaloneSchedulerBackend at INFO before the job lowers the level; also in the
    # executors' command lines. Read it from the worker dirs when the driver log does not show it.
    match = re.search(r"app-\d{14}-\d{4}", output)
    assert match, f"no standalone application id in the spark-submit output:\n{output[-3000:]}"
    return match.group(0)


def _assert_ran_on_both_workers(cluster: StandaloneCluster, app_id: str) -> None:
    """The master lists the app as FINISHED and each worker's executor log shows tasks it ran."""
    apps = {app["id"]: app for app in cluster.completed_apps()}
    assert app_id in apps, f"{app_id} not among the master's completed apps {sorted(apps)}"
    assert apps[app_id]["state"] == "FINISHED"
    for index, logs in cluster.executor_logs(app_id).items():
        ran = sum(path.read_text(errors="replace").count("Running task") for path in logs)
        assert ran > 0, f"worker {index} ran no task of {app_id} (executor logs: {logs})"


def _methods_present(*names: str) -> list:
    """Histories methods to run: those registered whose trainer module exists in this checkout."""
    params = []
    for name in names:
        method = METHODS.get(name)
        module = method.trainer.partition(":")[0] if method else None
        present = module is not None and importlib.util.find_spec(module) is not None
        params.append(pytest.param(name, marks=() if present else pytest.mark.skip(
            reason=f"train method {name!r}: module {module} does not exist yet")))
    return params


def test_text_pipeline_on_the_cluster(cluster, wheel, demo, tmp_path):
    """tokenize -> train (word2vec; sgns with 2 barrier tasks, one per worker) -> evaluate -> embed -> neighbors."""
    out = tmp_path
    app = _ok(_submit(cluster, wheel, "tokenize", "--input", str(demo["corpus"]), "--output", str(out / "tokens"),
                      "--min-count", "3"))
    _assert_ran_on_both_workers(cluster, app)
    assert {p.name for p in (out / "tokens").iterdir()} >= {"tokens", "vocab", "bow", "report.json"}
    tokenize_report = json.loads((out / "tokens" / "report.json").read_text(encoding="utf-8"))
    assert tokenize_report["documents"] == 3000

    app = _ok(_submit(cluster, wheel, "train", "--input", str(out / "tokens"), "--output", str(out / "w2v"),
                      "--method", "word2vec", "--dim", "16", "--set", "word2vec.epochs=1",
                      "--set", "word2vec.partitions=2", "--seed", "1"))
    words = read_embedding_table(str(out / "w2v"))
    assert (words.manifest["method"], words.dim) == ("word2vec", 16)
    assert len(words) == tokenize_report["vocab_size"]

    pytest.importorskip("torch")
    app = _ok(_submit(cluster, wheel, "train", "--input", str(out / "tokens"), "--output", str(out / "sgns"),
                      "--method", "sgns", "--dim", "16", "--set", "sgns.epochs=1", "--processes", "2", "--threads", "1",
                      "--device", "cpu", "--seed", "1"))
    # A barrier stage of 2 tasks needs both 1-core workers at once: each must have run one.
    _assert_ran_on_both_workers(cluster, app)
    sgns = read_embedding_table(str(out / "sgns"))
    assert (sgns.manifest["method"], sgns.manifest["params"]["processes"], sgns.dim) == ("sgns", 2, 16)
    assert sgns.keys == words.keys

    _ok(_submit(cluster, wheel, "evaluate", "--table", str(out / "w2v"), "--output", str(out / "report"),
                "--similarity", str(demo["similarity"]), "--analogies", str(demo["analogies"]),
                "--probes", "france,paris", "--neighbors", "3"))
    report = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["table"]["method"] == "word2vec"
    assert report["analogies"][0]["questions_total"] > 0
    assert [p["key"] for p in report["neighbours"]["probes"]] == ["france", "paris"]
    assert (out / "report" / "projection.png").stat().st_size > 0

    _ok(_submit(cluster, wheel, "embed", "--table", str(out / "w2v"), "--input", str(out / "tokens" / "tokens"),
                "--column", "tokens", "--output", str(out / "embedded")))
    _ok(_submit(cluster, wheel, "neighbors", "--table", str(out / "w2v"), "--output", str(out / "neighbors"),
                "--k", "3", "--queries", "france,paris"))
    import pyarrow.parquet as pq

    embedded = pq.read_table(out / "embedded")
    assert embedded.num_rows == tokenize_report["documents"]
    assert embedded.schema.field("vector").type.value_type.bit_width == 32
    neighbors = pq.read_table(out / "neighbors").to_pandas()
    assert sorted(neighbors["key"].unique()) == ["france", "paris"]
    assert neighbors.groupby("key").size().tolist() == [3, 3]


@pytest.fixture(scope="module")
def cluster_histories(cluster, wheel, demo, tmp_path_factory) -> Path:
    """The watch log through ``jobs/histories.py`` on the cluster, once for every item method."""
    histories = tmp_path_factory.mktemp("cluster-histories") / "histories"
    _ok(_submit(cluster, wheel, "histories", "--input", str(demo["watch_log"]), "--output", str(histories),
                "--time-column", "timestamp"))
    assert {p.name for p in histories.iterdir()} >= {"sequences", "vocab", "report.json"}
    return histories


@pytest.mark.parametrize("method", _methods_present("item2vec", "als"))
def test_histories_pipeline_on_the_cluster(cluster, wheel, cluster_histories, tmp_path, method):
    """histories -> train (item methods present in this checkout) on the cluster."""
    if method == "item2vec":
        pytest.importorskip("torch")
    extra = (["--set", "item2vec.epochs=1", "--processes", "2", "--threads", "1", "--device", "cpu"]
             if method == "item2vec" else [])
    _ok(_submit(cluster, wheel, "train", "--input", str(cluster_histories), "--output", str(tmp_path / "items"),
                "--method", method, "--dim", "8", "--seed", "1", *extra))
    items = read_embedding_table(str(tmp_path / "items"))
    assert (items.manifest["method"], items.dim) == (method, 8)
    assert read_manifest(str(tmp_path / "items"))["key_kind"] == "item"


def test_bad_input_on_the_cluster_fails_with_one_line(cluster, wheel, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "tokens"
    result = _submit(cluster, wheel, "tokenize", "--input", str(empty), "--output", str(out))
    assert result.returncode != 0
    # spark-submit's PythonRunner merges the driver's stderr into its own stdout.
    output = result.stdout + result.stderr
    assert (f"embedpipe tokenize: error: input directory {empty} holds no data files; cannot detect its format"
            in output.splitlines())
    assert "Traceback" not in output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def _wait_for_finished_tasks(cluster: StandaloneCluster, index: int, process: subprocess.Popen, count: int,
                             earlier: set[str], timeout: float = SUBMIT_TIMEOUT) -> str:
    """Wait until worker ``index``'s executor of a new app has finished ``count`` tasks; return the app id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the job finished before the worker could be killed: make the kill test's corpus larger")
        for log in cluster.work_dir(index).glob("app-*/*/stderr"):
            app_id = log.parent.parent.name
            if app_id not in earlier and log.read_text(errors="replace").count("Finished task") >= count:
                return app_id
        time.sleep(0.2)
    pytest.fail(f"worker {index} finished fewer than {count} tasks in {timeout:.0f}s")


def test_killing_a_worker_mid_job_changes_nothing(cluster, wheel, spark, tmp_path):
    """SIGKILL a worker (and its executor) mid-tokenize: Spark reruns its tasks on the other; same output."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for part in range(16):  # 16 input files -> at least 16 tasks per stage, spread over both workers
        generate_corpus(corpus / f"part-{part:02d}.txt", documents=8_000, seed=100 + part)
    args = ["--input", str(corpus), "--min-count", "2"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"

    # The uninterrupted reference runs in this process's local session (same job, same config file):
    # its output must equal the cluster run's whatever executed it.
    started = time.monotonic()
    assert cli(["tokenize", "--config", str(ROOT / "conf" / "cluster.toml"), *args, "--output", str(reference),
                "--log-level", "WARNING"]) == 0
    reference_seconds = time.monotonic() - started

    victim = 1
    earlier = {path.name for path in cluster.work_dir(victim).glob("app-*")}
    process = subprocess.Popen(_submit_command(cluster, wheel, "tokenize", *args, "--output", str(killed)),
                               cwd=ROOT, env=cluster.spark_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        app_id = _wait_for_finished_tasks(cluster, victim, process, count=2, earlier=earlier)
        killed_at = time.monotonic()
        cluster.kill_worker(victim)
        output, _ = process.communicate(timeout=SUBMIT_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cluster.start_worker(victim)  # later tests get two workers again

    assert process.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    print(f"reference run (local) {reference_seconds:.1f}s; worker {victim} killed, job finished "
          f"{time.monotonic() - killed_at:.1f}s later")
    apps = {app["id"]: app for app in cluster.completed_apps()}
    assert apps[app_id]["state"] == "FINISHED"
    # The driver saw its executor on the killed worker go away and carried on with the other one.
    assert re.search(r"Lost executor \d+|Executor lost|worker lost|disassociated", output, re.IGNORECASE), (
        output[-4000:])
    assert sum(w["state"] == "DEAD" for w in cluster.state()["workers"]) >= 1

    for part in ("tokens", "vocab", "bow"):
        expected = spark.read.parquet(str(reference / part))
        actual = spark.read.parquet(str(killed / part))
        assert_df_equality(actual, expected, ignore_row_order=True)
    reports = [json.loads((path / "report.json").read_text(encoding="utf-8")) for path in (killed, reference)]
    for report in reports:
        report.pop("stages")  # seconds per stage differ run to run; everything else must not
    assert reports[0] == reports[1]
