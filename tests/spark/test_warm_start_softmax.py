"""`train --method softmax --init-from TABLE`: kept items start from the parent's embedding rows (and its
output weights when exported), new items as in a cold run; the manifest records parent and overlap; bad
parents are one-line errors that write nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_watch_log
from embedpipe.table import MANIFEST_FILE, read_embedding_table

pytest.importorskip("torch")

SOFTMAX = ["--method", "softmax", "--dim", "8", "--set", "softmax.epochs=2", "--set", "softmax.batch_size=32",
           "--device", "cpu", "--threads", "1", "--seed", "5", "--log-level", "ERROR"]
#: an Adam step so small that training leaves the starting rows where they were (to the 4th decimal)
FROZEN = ["--set", "softmax.step_size=0.0000001"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Two days of a planted watch log: day 1 over 80 movies, day 2 over 120 (so 40 may be new)."""
    root = tmp_path_factory.mktemp("warm-softmax")
    for day, items in ((1, 80), (2, 120)):
        info = generate_watch_log(root / f"watch{day}.csv", users=150, items=items, seed=day)
        assert main(["histories", "--input", str(info.path), "--output", str(root / f"histories{day}"),
                     "--time-column", "timestamp", "--log-level", "ERROR"]) == 0
    return root


def _train(root, out, *extra) -> int:
    return main(["train", "--input", str(root / "histories2"), "--output", str(out), *SOFTMAX, *extra])


@pytest.mark.slow
def test_softmax_warm_start_keeps_the_parents_input_and_output_vectors(logs, tmp_path):
    parent_path, parent_output = tmp_path / "day1", tmp_path / "day1-output"
    assert main(["train", "--input", str(logs / "histories1"), "--output", str(parent_path), *SOFTMAX,
                 "--set", f"softmax.export_output_vectors={parent_output}"]) == 0
    parent, parent_out = read_embedding_table(str(parent_path)), read_embedding_table(str(parent_output))
    assert parent.manifest["params"]["output_vectors_table"] == str(parent_output)
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    assert _train(logs, cold, *FROZEN, "--set", f"softmax.export_output_vectors={cold}-output") == 0
    assert _train(logs, warm, *FROZEN, "--set", f"softmax.export_output_vectors={warm}-output",
                  "--init-from", str(parent_path)) == 0
    cold_table, warm_table = read_embedding_table(str(cold)), read_embedding_table(str(warm))
    warm_out, cold_out = read_embedding_table(f"{warm}-output"), read_embedding_table(f"{cold}-output")
    assert warm_table.keys == cold_table.keys and list(warm_table.ids) == list(cold_table.ids)
    shared = [k for k in warm_table.keys if k in parent]
    added = [k for k in warm_table.keys if k not in parent]
    assert len(shared) > 20 and added
    record = warm_table.manifest["params"]["warm_start"]
    assert (record["kept"], record["added"], record["dropped"]) == (len(shared), len(added),
                                                                   len(parent) - len(shared))
    assert record["output_vectors"] is True and record["parent"]["path"] == str(parent_path)
    assert "warm_start" not in cold_table.manifest["params"]
    np.testing.assert_allclose(warm_table.vectors_of(shared), parent.vectors_of(shared), atol=1e-4)
    np.testing.assert_allclose(warm_out.vectors_of(shared), parent_out.vectors_of(shared), atol=1e-4)
    np.testing.assert_allclose(warm_table.vectors_of(added), cold_table.vectors_of(added), atol=1e-4)
    np.testing.assert_allclose(warm_out.vectors_of(added), cold_out.vectors_of(added), atol=1e-4)
    assert not np.allclose(cold_table.vectors_of(shared), parent.vectors_of(shared), atol=1e-2)
    # with hidden layers the parent's output weights belong to layers its table does not hold: they start fresh
    hidden = tmp_path / "hidden"
    assert _train(logs, hidden, *FROZEN, "--set", "softmax.hidden=8", "--init-from", str(parent_path)) == 0
    hidden_table = read_embedding_table(str(hidden))
    assert hidden_table.manifest["params"]["warm_start"]["output_vectors"] is False
    np.testing.assert_allclose(hidden_table.vectors_of(shared), parent.vectors_of(shared), atol=1e-4)


@pytest.mark.parametrize("case", ["dim", "key_kind", "no_manifest", "newer", "same_as_output"])
def test_softmax_bad_parents_are_one_line_errors_and_write_nothing(logs, tmp_path, write_table, capsys, case):
    out = tmp_path / "t"
    parent = tmp_path / "p"
    if case == "dim":
        write_table(parent, [("m0001", 0, 5, [0.1] * 4)], dim=4, key_kind="item")
        expected = f"config key 'init_from': parent table {parent} has dim 4, this run has dim 8"
    elif case == "key_kind":
        write_table(parent, [("m0001", 0, 5, [0.1] * 8)], dim=8)
        expected = f"config key 'init_from': parent table {parent} has token keys, this run's input has item keys"
    else:
        write_table(parent, [("m0001", 0, 5, [0.1] * 8)], dim=8, key_kind="item")
        if case == "no_manifest":
            (parent / MANIFEST_FILE).unlink()
            expected = (f"config key 'init_from' ({parent}): {parent} is not an embedpipe embedding table "
                        "(no _manifest.json)")
        elif case == "newer":
            manifest = json.loads((parent / MANIFEST_FILE).read_text())
            (parent / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
            expected = f"config key 'init_from' ({parent}): {parent}: table format version 99 is newer than this"
        else:
            out = parent
            expected = "config key 'init_from' must differ from 'output' (the parent table would be replaced)"
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    assert _train(logs, out, "--init-from", str(parent)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"embedpipe train: error: {expected}") and err.count("\n") == 1, err
    if case == "same_as_output":
        assert sorted(p.name for p in out.iterdir()) == before
    else:
        assert not out.exists()
    shutil.rmtree(parent, ignore_errors=True)
