"""`train --init-from TABLE` (warm start): kept keys start from the parent, new keys fresh, the manifest
records the parent and the overlap; bad parents are one-line errors that write nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_corpus
from embedpipe.drift import measure_drift
from embedpipe.jobconfig import TokenizeConfig
from embedpipe.table import MANIFEST_FILE, read_embedding_table
from embedpipe.text.pipeline import run_tokenize

pytest.importorskip("torch")

SGNS = ["--method", "sgns", "--dim", "16", "--set", "sgns.epochs=1", "--threads", "1", "--device", "cpu",
        "--seed", "5", "--log-level", "ERROR"]
#: a learning rate so small that training leaves the starting vectors where they were (to the 4th decimal)
FROZEN = ["--set", "sgns.step_size=0.000001", "--set", "sgns.warm_step_size=0.000001",
          "--set", "sgns.min_step_size=0.0000001"]


@pytest.fixture(scope="module")
def days(spark, tmp_path_factory):
    """Two days of a planted corpus (different documents, mostly the same vocabulary) and day 1's table."""
    root = tmp_path_factory.mktemp("warm")
    for day, seed in ((1, 11), (2, 12)):
        info = generate_corpus(root / f"day{day}.txt", documents=800 + 200 * day, seed=seed)
        run_tokenize(spark, TokenizeConfig(input=str(info.path), output=str(root / f"tokens{day}"), min_count=3))
    parent = root / "day1-table"
    assert main(["train", "--input", str(root / "tokens1"), "--output", str(parent), *SGNS,
                 "--set", f"sgns.export_output_vectors={root / 'day1-output'}"]) == 0
    return root


def _train(root, out, *extra) -> int:
    return main(["train", "--input", str(root / "tokens2"), "--output", str(out), *SGNS, *extra])


def test_warm_start_keeps_the_parents_vectors_and_records_the_overlap(spark, days, tmp_path):
    parent = read_embedding_table(str(days / "day1-table"))
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    assert _train(days, cold, *FROZEN) == 0
    assert _train(days, warm, *FROZEN, "--init-from", str(days / "day1-table")) == 0
    cold_table, warm_table = read_embedding_table(str(cold)), read_embedding_table(str(warm))
    # ids stay today's frequency ranks, keys today's vocabulary
    assert warm_table.keys == cold_table.keys and list(warm_table.ids) == list(cold_table.ids)
    shared = [k for k in warm_table.keys if k in parent]
    added = [k for k in warm_table.keys if k not in parent]
    record = warm_table.manifest["params"]["warm_start"]
    assert (record["kept"], record["added"], record["dropped"]) == (
        len(shared), len(added), len(parent) - len(shared))
    assert record["output_vectors"] is True and record["parent"]["path"] == str(days / "day1-table")
    # a warm run trains warm_epochs from warm_step_size, and says so
    assert (record["epochs"], record["step_size"]) == (1, 0.000001) and warm_table.manifest["params"]["epochs"] == 1
    assert record["parent"]["created_at"] == parent.manifest["created_at"] and len(record["parent"]["manifest_sha256"])
    assert "warm_start" not in cold_table.manifest["params"] and "init_from" not in warm_table.manifest["params"]
    assert len(shared) > 50 and added
    # kept keys start (and, at this learning rate, stay) at the parent's vectors; new keys at the mean of their
    # kept context keys' parent vectors (within the window), or, with none, as in a cold run
    np.testing.assert_allclose(warm_table.vectors_of(shared), parent.vectors_of(shared), atol=1e-3)
    assert not np.allclose(cold_table.vectors_of(shared), parent.vectors_of(shared), atol=1e-2)
    from embedpipe.methods.inputs import read_training_input
    from embedpipe.warm_context import context_vectors

    keys = pa.array(warm_table.keys)
    kept = np.flatnonzero(np.isin(warm_table.keys, shared))
    rows, expected, _ = context_vectors(read_training_input(spark, str(days / "tokens2")).sentences(), keys, kept,
                                        parent.vectors_of([warm_table.keys[i] for i in kept]), None, window=5)
    assert record["added_from_context"] == len(rows) > 0
    from_context = [warm_table.keys[i] for i in rows]
    np.testing.assert_allclose(warm_table.vectors_of(from_context), expected, atol=1e-3)
    random = [k for k in added if k not in set(from_context)]
    np.testing.assert_allclose(warm_table.vectors_of(random), cold_table.vectors_of(random), atol=1e-3)


def test_warm_start_is_deterministic_and_stays_nearer_the_parent_than_a_cold_run(days, tmp_path):
    out, cold = tmp_path / "warm", tmp_path / "cold"
    argv = ("--init-from", str(days / "day1-table"))
    assert _train(days, out, *argv) == 0
    first = read_embedding_table(str(out))
    assert _train(days, out, *argv) == 0
    np.testing.assert_array_equal(first.vectors, read_embedding_table(str(out)).vectors)
    assert _train(days, cold) == 0
    parent = read_embedding_table(str(days / "day1-table"))
    warm_drift = measure_drift(parent, first, top=300, k=10)
    cold_drift = measure_drift(parent, read_embedding_table(str(cold)), top=300, k=10)
    assert warm_drift.procrustes_residual < cold_drift.procrustes_residual - 0.1
    assert warm_drift.neighbour_overlap > cold_drift.neighbour_overlap


def test_missing_parent_fails_or_cold_starts(days, tmp_path, capsys):
    out = tmp_path / "t"
    assert _train(days, out, "--init-from", str(tmp_path / "nothing")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"embedpipe train: error: config key 'init_from': embedding table not found: "
                          f"{tmp_path / 'nothing'}") and err.count("\n") == 1
    assert not out.exists()
    assert _train(days, out, "--init-from", str(tmp_path / "nothing"), "--init-from-missing", "cold") == 0
    record = read_embedding_table(str(out)).manifest["params"]["warm_start"]
    assert record["parent"] is None and "did not exist" in record["cold_start"]


def test_parent_sharing_no_key_is_a_warned_cold_start(days, tmp_path, write_table, caplog):
    parent = tmp_path / "foreign"
    write_table(parent, [("zz-a", 0, 5, [0.1] * 16), ("zz-b", 1, 4, [0.2] * 16)], dim=16)
    out, cold = tmp_path / "t", tmp_path / "cold"
    assert _train(days, out, "--init-from", str(parent)) == 0
    assert _train(days, cold) == 0
    table = read_embedding_table(str(out))
    record = table.manifest["params"]["warm_start"]
    assert (record["kept"], record["dropped"], record["cold_start"]) == (0, 2, "no key shared with the parent")
    np.testing.assert_array_equal(table.vectors, read_embedding_table(str(cold)).vectors)


def _copy_parent(days, tmp_path, name):
    path = tmp_path / name
    shutil.copytree(days / "day1-table", path)
    return path


@pytest.mark.parametrize("case", ["dim", "key_kind", "no_manifest", "newer", "same_as_output", "method"])
def test_bad_parents_are_one_line_errors_and_write_nothing(days, tmp_path, write_table, capsys, case):
    out = tmp_path / "t"
    if case == "dim":
        parent = tmp_path / "p"
        write_table(parent, [("the", 0, 5, [0.1] * 8)], dim=8)
        expected = f"config key 'init_from': parent table {parent} has dim 8, this run has dim 16"
    elif case == "key_kind":
        parent = tmp_path / "p"
        write_table(parent, [("the", 0, 5, [0.1] * 16)], dim=16, key_kind="item")
        expected = f"config key 'init_from': parent table {parent} has item keys, this run's input has token keys"
    elif case == "no_manifest":
        parent = _copy_parent(days, tmp_path, "p")
        (parent / MANIFEST_FILE).unlink()
        expected = (f"config key 'init_from' ({parent}): {parent} is not an embedpipe embedding table "
                    "(no _manifest.json)")
    elif case == "newer":
        parent = _copy_parent(days, tmp_path, "p")
        manifest = json.loads((parent / MANIFEST_FILE).read_text())
        (parent / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
        expected = f"config key 'init_from' ({parent}): {parent}: table format version 99 is newer than this"
    elif case == "same_as_output":
        parent = out = _copy_parent(days, tmp_path, "p")
        expected = "config key 'init_from' must differ from 'output' (the parent table would be replaced)"
    else:
        parent = days / "day1-table"
        expected = "config key 'init_from' is not used by method word2vec (only by sgns, item2vec, softmax)"
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    if case == "method":
        argv = ["train", "--input", str(days / "tokens2"), "--output", str(out), "--method", "word2vec"]
        assert main([*argv, "--init-from", str(parent)]) == 2
    else:
        assert _train(days, out, "--init-from", str(parent)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"embedpipe train: error: {expected}") and err.count("\n") == 1, err
    if case == "same_as_output":
        assert sorted(p.name for p in out.iterdir()) == before
    else:
        assert not out.exists()


def _publish(table, report, published, run_date, sim_file):
    assert main(["evaluate", "--table", str(table), "--output", str(report), "--similarity", str(sim_file),
                 "--log-level", "ERROR"]) == 0
    assert main(["publish", "--table", str(table), "--report", str(report), "--output", str(published),
                 "--run-date", run_date, "--log-level", "ERROR"]) == 0


def test_through_the_published_path_a_rerun_starts_from_the_same_parent(days, tmp_path):
    """The nightly DAG warm-starts from the published path; rerunning the published date must not start
    from its own result, so the rerun gives the same table."""
    sim = tmp_path / "sim.tsv"
    sim.write_text("the\tof\t5\nand\ta\t5\n", encoding="utf-8")
    published, out, day1 = tmp_path / "published", tmp_path / "day2", tmp_path / "day1"
    nightly = ("--init-from", str(published), "--init-from-missing", "cold")
    assert _train(days, day1, *nightly) == 0  # nothing published yet: a cold start
    _publish(day1, tmp_path / "report1", published, "2026-11-24", sim)
    cold = read_embedding_table(str(day1))
    assert _train(days, day1, *nightly) == 0  # its rerun: cold again, recorded as the first run was
    np.testing.assert_array_equal(read_embedding_table(str(day1)).vectors, cold.vectors)
    assert read_embedding_table(str(day1)).manifest["params"] == cold.manifest["params"]
    _publish(days / "day1-table", tmp_path / "report1", published, "2026-11-24", sim)
    assert _train(days, out, "--init-from", str(published)) == 0
    first = read_embedding_table(str(out))
    parent = first.manifest["params"]["warm_start"]["parent"]
    assert parent["path"].endswith(str(days / "day1-table"))  # the run it came from, not the published path
    _publish(out, tmp_path / "report2", published, "2026-11-25", sim)
    assert _train(days, out, "--init-from", str(published)) == 0  # the rerun: published now holds day 2
    again = read_embedding_table(str(out))
    np.testing.assert_array_equal(again.vectors, first.vectors)
    assert again.manifest["params"] == first.manifest["params"]


def test_new_keys_start_from_the_mean_of_their_kept_context_keys(spark):
    """context_vectors against a hand count: unknown tokens are dropped before windows, documents do not mix."""
    from embedpipe.warm_context import context_vectors

    keys = pa.array(["a", "b", "c", "n", "m", "lone"])
    kept = np.array([0, 1, 2])
    w_in = np.array([[1, 0], [0, 1], [3, 3]], dtype=np.float32)
    w_out = -w_in
    docs = spark.createDataFrame([("d1", ["a", "n", "b", "zz", "c"]), ("d2", ["c", "zz", "m", "n"]), ("d3", ["lone"])],
                                 "doc_id string, tokens array<string>")
    rows, new_in, new_out = context_vectors(docs, keys, kept, w_in, w_out, window=1)
    # n: a and b in d1, nothing kept next to it in d2 (m is new); m: c (zz is dropped); lone: no context
    assert rows.tolist() == [3, 4]
    np.testing.assert_allclose(new_in, [[0.5, 0.5], [3, 3]])
    np.testing.assert_allclose(new_out, -new_in)
    rows, new_in, _ = context_vectors(docs, keys, kept, w_in, None, window=2)
    np.testing.assert_allclose(new_in[0], (w_in[0] + w_in[1] + 2 * w_in[2]) / 4)  # n, window 2: a, b, c; c of d2
