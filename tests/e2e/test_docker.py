"""docker/: the compose file's shape, and one install step shared by the image, CI and the README.

No Docker engine runs in CI, so the compose file is checked as data rather than started.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_LINE = '-c constraints-cpu.txt -e ".[torch,dev,airflow,index,korean]"'


def test_compose_file_shape():
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the 'airflow' extra")
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"spark-master", "spark-worker-1", "spark-worker-2", "airflow"}
    for name, service in services.items():
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert service["image"] == "embedpipe:latest", name
        assert "data:/data" in service["volumes"], name
    assert (ROOT / "docker" / services["airflow"]["build"]["dockerfile"].split("/", 1)[1]).is_file()
    assert services["spark-master"]["command"][:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    for worker in ("spark-worker-1", "spark-worker-2"):
        command = services[worker]["command"]
        assert command[:3] == ["spark-class", "org.apache.spark.deploy.worker.Worker", "spark://spark-master:7077"]
    airflow = services["airflow"]
    assert airflow["command"] == ["airflow", "standalone"]
    env = airflow["environment"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/embedpipe/embedpipe/orchestration"
    assert env["EMBEDPIPE_NIGHTLY_SETTINGS"] == "/opt/embedpipe/conf/airflow/nightly_dag.toml"
    assert '"spark://spark-master"' in env["AIRFLOW_CONN_SPARK_DEFAULT"]
    assert "data" in compose["volumes"]
    # The paths the compose file hands Airflow exist in the image's layout (the Dockerfile copies them).
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "WORKDIR /opt/embedpipe" in dockerfile
    for folder in ("embedpipe", "jobs", "conf"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert (ROOT / "embedpipe" / "orchestration" / "nightly_dag.py").is_file()
    assert (ROOT / "conf" / "airflow" / "nightly_dag.toml").is_file()


def test_image_ci_and_readme_install_the_same_way():
    script = (ROOT / "docker" / "install.sh").read_text(encoding="utf-8")
    commands = [line for line in script.splitlines() if line.startswith("python -m pip install")]
    assert commands == [f'python -m pip install "$@" {INSTALL_LINE}']
    assert re.search(r"^RUN bash docker/install\.sh$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    assert re.search(r"^bash docker/install\.sh --quiet$", (ROOT / ".ci" / "run").read_text(), re.M)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"pip install {INSTALL_LINE}" in readme
