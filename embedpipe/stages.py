"""Where a job's wall-clock time goes: seconds per stage, for its report and its log.

Spark runs lazily, so a stage is timed where its work actually runs (the action that computes it),
not where the frame is defined: a job calls :meth:`StageClock.lap` after each action, and the time
since the previous lap goes to that stage. Stages are reported in the order they ran; a name used
twice adds up.
"""

from __future__ import annotations

import logging
import time


class StageClock:
    """Laps of one job run: ``lap("count")`` charges the time since the last lap to ``count``."""

    def __init__(self) -> None:
        self._started = self._last = time.perf_counter()
        self._seconds: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._seconds[stage] = self._seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def seconds(self) -> dict[str, float]:
        """Seconds per stage (3 decimals) and ``total`` (since the clock started, laps or not)."""
        out = {stage: round(seconds, 3) for stage, seconds in self._seconds.items()}
        out["total"] = round(time.perf_counter() - self._started, 3)
        return out

    def log(self, logger: logging.Logger, job: str) -> None:
        stages = self.seconds()
        total = stages.pop("total")
        parts = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stages.items())
        logger.info("%s stages: %s; total %.1f s", job, parts, total)
