"""A throw-away Spark standalone cluster (one master, N workers) on 127.0.0.1 for integration tests.

Started with the pip pyspark package's own ``bin/spark-class`` (the same launcher a real cluster's
``sbin`` scripts use), on free ports, with every directory Spark writes (work dirs, local dirs,
logs) under one base directory. Each daemon runs in its own process group so that stopping it also
stops the executor JVMs and Python workers it forked; :meth:`StandaloneCluster.stop` always signals
by process group id (SIGTERM, then SIGKILL), never by process name, and then checks that nothing
carrying this cluster's marker is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HOST = "127.0.0.1"


class ClusterError(RuntimeError):
    """The cluster did not start (or stop) as expected; the message carries the daemons' last log lines."""


def spark_home() -> Path:
    """The pip pyspark package's directory: it holds ``bin/spark-class``, ``bin/spark-submit`` and the jars."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    """One started JVM (master or worker); ``pid`` is also its process-group id."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a recycled id owned by someone else is not ours
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class StandaloneCluster:
    """A master and ``workers`` workers (``cores`` cores, ``memory`` each) under ``base``.

    Use as a context manager, or call :meth:`start` and (always, in a ``finally``) :meth:`stop`.
    """

    def __init__(self, base: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g",
                 daemon_memory: str = "512m", start_timeout: float = 90.0):
        self.base = Path(base).resolve()
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.daemon_memory = daemon_memory
        self.start_timeout = start_timeout
        self.port = free_port()
        self.webui_port = free_port()
        self.master_daemon: Daemon | None = None
        self.worker_daemons: dict[int, Daemon] = {}
        self._stopped_groups: list[int] = []
        # Every JVM we start carries this in its command line (and executors in their work dir path).
        self.marker = f"-Dembedpipe.test.cluster={self.base}"

    # -- addresses --------------------------------------------------------------------------------

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    @property
    def json_url(self) -> str:
        return f"http://{HOST}:{self.webui_port}/json/"

    def work_dir(self, index: int) -> Path:
        return self.base / f"worker-{index}" / "work"

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the master and the workers and wait until every worker is registered ALIVE."""
        if not java_available():
            raise ClusterError("Java is not installed (no JAVA_HOME/bin/java and no java on PATH)")
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            self.master_daemon = self._launch(
                "master", [MASTER_CLASS, "--host", HOST, "--port", str(self.port),
                           "--webui-port", str(self.webui_port)],
            )
            self._wait(lambda state: state is not None, "the master's web UI to answer")
            for index in range(self.workers):
                self.start_worker(index, wait=False)
            self.wait_for_workers(self.workers)
        except BaseException:
            self.stop()
            raise

    def start_worker(self, index: int, *, wait: bool = True) -> None:
        """(Re)start worker ``index``; with ``wait``, block until the master lists it ALIVE."""
        old = self.worker_daemons.get(index)
        if old is not None and old.alive():
            raise ClusterError(f"worker {index} is already running (pid {old.pid})")
        work = self.work_dir(index)
        work.mkdir(parents=True, exist_ok=True)
        self.worker_daemons[index] = self._launch(
            f"worker-{index}",
            [WORKER_CLASS, self.master_url, "--cores", str(self.cores), "--memory", self.memory,
             "--host", HOST, "--port", str(free_port()), "--webui-port", str(free_port()),
             "--work-dir", str(work)],
            local_dirs=self.base / f"worker-{index}" / "local",
            worker_dir=work,
        )
        if wait:
            self.wait_for_workers(len([d for d in self.worker_daemons.values() if d.alive()]))

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker ``index`` with everything in its process group (its executor JVM, Python workers)."""
        daemon = self.worker_daemons[index]
        self._stopped_groups.append(daemon.pid)
        _signal_group(daemon.pid, signal.SIGKILL)
        daemon.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_alive(daemon.pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop everything this cluster started: SIGTERM each process group, SIGKILL what is left. Idempotent."""
        daemons = [*self.worker_daemons.values(), *([self.master_daemon] if self.master_daemon else [])]
        for daemon in daemons:
            _signal_group(daemon.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for daemon in daemons:
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # Executors and Python workers may outlive their daemon's SIGTERM: the group id still reaches them.
        while any(_group_alive(d.pid) for d in daemons) and time.monotonic() < deadline:
            time.sleep(0.1)
        for daemon in daemons:
            _signal_group(daemon.pid, signal.SIGKILL)
        for daemon in daemons:
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.process.wait(timeout=10)
            self._stopped_groups.append(daemon.pid)
        self.worker_daemons.clear()
        self.master_daemon = None

    def leftover_processes(self) -> list[str]:
        """Processes still alive from this cluster: in one of its process groups or carrying its marker."""
        found = [f"process group {pgid}" for pgid in self._stopped_groups if _group_alive(pgid)]
        base = str(self.base)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink(entry / "cwd")
            except OSError:  # gone meanwhile, or not ours to inspect
                continue
            if base in cmdline or cwd.startswith(base):
                found.append(f"pid {entry.name} (cwd {cwd}): {cmdline[:200]}")
        return found

    # -- state ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        """The master's JSON status (workers, active and completed apps), or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.json_url, timeout=2) as response:
                return json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def alive_workers(self) -> list[dict[str, Any]]:
        state = self.state() or {}
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]

    def wait_for_workers(self, count: int) -> None:
        self._wait(lambda state: state is not None and sum(
            1 for w in state.get("workers", []) if w.get("state") == "ALIVE") >= count,
            f"{count} ALIVE worker(s) in {self.json_url}")

    def completed_apps(self) -> list[dict[str, Any]]:
        return list((self.state() or {}).get("completedapps", []))

    def executor_logs(self, app_id: str) -> dict[int, list[Path]]:
        """Per worker index, the executor ``stderr`` files of application ``app_id`` in its work dir."""
        return {
            index: sorted((self.work_dir(index) / app_id).glob("*/stderr"))
            for index in range(self.workers)
        }

    def spark_env(self) -> dict[str, str]:
        """Environment for clients (spark-submit) of this cluster: loopback only, scratch under ``base``."""
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_LOCAL_DIRS": str(self.base / "client-local"),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        })
        # A caller's own conf dir (spark-defaults.conf, log4j2) must not leak into the test.
        env.pop("SPARK_CONF_DIR", None)
        return env

    # -- internals --------------------------------------------------------------------------------

    def _launch(self, name: str, args: list[str], *, local_dirs: Path | None = None,
                worker_dir: Path | None = None) -> Daemon:
        env = self.spark_env()
        env["SPARK_DAEMON_MEMORY"] = self.daemon_memory
        env["SPARK_DAEMON_JAVA_OPTS"] = self.marker
        env["SPARK_LOCAL_DIRS"] = str(local_dirs or self.base / f"{name}-local")
        if worker_dir is not None:
            env["SPARK_WORKER_DIR"] = str(worker_dir)
        Path(env["SPARK_LOCAL_DIRS"]).mkdir(parents=True, exist_ok=True)
        log = self.base / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                cwd=self.base, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches its executors too
            )
        return Daemon(name, process, log)

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            for daemon in [self.master_daemon, *self.worker_daemons.values()]:
                if daemon is not None and not daemon.alive():
                    raise ClusterError(f"{daemon.name} exited with {daemon.process.returncode} while waiting "
                                       f"for {what}:\n{daemon.tail()}")
            if ready(self.state()):
                return
            time.sleep(0.25)
        tails = "\n".join(f"--- {d.name}\n{d.tail()}" for d in [self.master_daemon, *self.worker_daemons.values()]
                          if d is not None)
        raise ClusterError(f"timed out after {self.start_timeout:.0f}s waiting for {what}\n{tails}")
