"""Local masters get a few shuffle partitions per core instead of Spark's cluster-sized 200."""

from __future__ import annotations

import pytest

from embedpipe import sparkenv


@pytest.mark.parametrize(("master", "expected"), [
    ("local", 4), ("local[2]", 8), ("local[16]", 64), ("local[3,2]", 12), (" local[1] ", 4),
])
def test_local_masters_get_four_partitions_per_core(master, expected):
    assert sparkenv.local_shuffle_partitions(master) == expected


def test_local_star_counts_the_machines_cores(monkeypatch):
    monkeypatch.setattr(sparkenv.os, "cpu_count", lambda: 6)
    assert sparkenv.local_shuffle_partitions("local[*]") == 24


@pytest.mark.parametrize("master", ["spark://127.0.0.1:7077", "yarn", "k8s://https://h:443", "local-cluster[2,1,512]"])
def test_cluster_masters_keep_the_clusters_setting(master):
    assert sparkenv.local_shuffle_partitions(master) is None
