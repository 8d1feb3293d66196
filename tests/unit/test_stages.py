"""StageClock: laps charge the time since the previous lap, in order, and add up per name."""

from __future__ import annotations

import logging

from embedpipe import stages


def test_laps_charge_elapsed_time_in_order_and_add_up(monkeypatch):
    now = iter([10.0, 11.5, 14.0, 14.25, 20.0, 21.0])  # start, laps..., seconds()
    monkeypatch.setattr(stages.time, "perf_counter", lambda: next(now))
    clock = stages.StageClock()
    clock.lap("read")
    clock.lap("count")
    clock.lap("read")  # a second lap of a stage adds to it, keeping its first position
    clock.lap("write")
    assert clock.seconds() == {"read": 1.75, "count": 2.5, "write": 5.75, "total": 11.0}


def test_log_names_every_stage_and_the_total(caplog):
    clock = stages.StageClock()
    clock.lap("open")
    with caplog.at_level(logging.INFO):
        clock.log(logging.getLogger("job"), "tokenize")
    assert caplog.messages[0].startswith("tokenize stages: open ") and "; total " in caplog.messages[0]
