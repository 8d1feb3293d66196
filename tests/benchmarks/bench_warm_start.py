"""Warm start vs cold start over 5 "days" of text and of interactions (issue 24).

Run from the checkout (real data under ../shared/data; a few minutes on 2 cores)::

    python tests/benchmarks/bench_warm_start.py [--workdir DIR] [--parts text,movielens] \
        [--warm-epochs default,2] [--warm-step-size default,0.05,0.005] [--fresh-jobs] 2> bench.log

Text: the text8 prefix (``../shared/data/text8-prefix/``) is cut into ``--slices`` equal slices of
1,000-token lines; day d's corpus is the sliding window of ``--window`` slices starting at slice d,
so each day drops the oldest slice and adds a new one. Interactions: the MovieLens dev log
(``../shared/data/movielens-latest-small/``) cut by time into 6 equal-count periods; day d's log is
every rating up to the end of period d (the log grows), and Recall@20 is scored on period d+1's
ratings (users' next items, cosine of the mean of their history's item vectors, seen items excluded).

Per day, all through the jobs as a user runs them (``embedpipe.cli.main``, one SparkSession): a cold
run with the method's full epochs and one warm run per ``--warm-epochs`` x ``--warm-step-size`` pair
(``--init-from`` the previous day's table of the same chain, the method's ``warm_epochs`` and
``warm_step_size``, "default" = the method's defaults; every chain starts from day 1's cold table).
Both export their output vectors, so the next warm run starts them too. With ``--fresh-jobs`` every
train job is its own process (``local[2]``), paying a session's start-up as a nightly DAG task does;
without it they share the bench's session, whose warm Python workers hide those costs. Measured: quality (WS353 /
SimLex Spearman, Google analogy accuracy; Recall@20), the train job's wall-clock time and its
``train`` stage seconds (the summary's ``stages``), and neighbour overlap@10 of the
10,000 most frequent keys shared with the previous day's table of the same kind
(:func:`embedpipe.drift.measure_drift`, which also gives the Procrustes residual). Prints a Markdown
table and writes it to ``<workdir>/bench_warm_start.md``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import embedpipe.cli as cli_module  # noqa: E402
from embedpipe.cli import main as cli  # noqa: E402
from embedpipe.drift import measure_drift  # noqa: E402
from embedpipe.table import read_embedding_table  # noqa: E402
from tests.benchmarks.common import score, spark_session  # noqa: E402

log = logging.getLogger("bench_warm_start")
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TEXT8 = DATA / "text8-prefix" / "text8-prefix.txt.gz"
RATINGS = DATA / "movielens-latest-small" / "ratings.csv"
LOG_LEVEL = ["--log-level", "INFO"]  # the job summary is an INFO line
DAYS = 5


class _Summaries(logging.Handler):
    """Keeps the job summaries ``embedpipe.cli`` logs ("<job> done: {json}"): the train stage's seconds."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last: dict = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " done: " in message:
            self.last = json.loads(message.split(" done: ", 1)[1])


SUMMARIES = _Summaries()
_configure_logging = cli_module._configure_logging


def _configure_logging_and_keep_summaries(level: str) -> None:
    """The CLI replaces the "embedpipe" logger's handlers on every run: add ours back after it."""
    _configure_logging(level)
    logging.getLogger("embedpipe").addHandler(SUMMARIES)


cli_module._configure_logging = _configure_logging_and_keep_summaries


#: Run each train job in its own Python process (its own SparkSession and JVM), as the nightly DAG does.
FRESH_JOBS = {"on": False}
_CLI = "import sys; from embedpipe.cli import main; sys.exit(main(sys.argv[1:]))"


def _run(argv: list[str]) -> float:
    """Run one job through the CLI; its wall seconds (the summary lands in ``SUMMARIES.last``)."""
    SUMMARIES.last = {}
    started = time.perf_counter()
    if FRESH_JOBS["on"] and argv[0] == "train":
        done = subprocess.run([sys.executable, "-c", _CLI, *argv, *LOG_LEVEL, "--master", "local[2]"],
                              capture_output=True, text=True, check=False)
        code = done.returncode
        summary = [line for line in done.stderr.splitlines() if " done: " in line]
        SUMMARIES.last = json.loads(summary[-1].split(" done: ", 1)[1]) if summary else {}
    else:
        code = cli([*argv, *LOG_LEVEL])
    if code != 0:
        raise SystemExit(f"{argv[0]} failed (exit {code}): {' '.join(argv)}")
    return time.perf_counter() - started


def text_days(work: Path, slices: int, window: int) -> list[Path]:
    words = gzip.open(TEXT8, "rt", encoding="utf-8").read().split()
    size = len(words) // slices
    lines = [" ".join(words[i:i + 1000]) for i in range(0, size * slices, 1000)]
    per_slice = len(lines) // slices
    days = []
    for day in range(DAYS):
        path = work / f"text-day{day + 1}.txt"
        path.write_text("\n".join(lines[day * per_slice:(day + window) * per_slice]) + "\n", encoding="utf-8")
        days.append(path)
    return days


def ratings_days(work: Path) -> list[tuple[Path, list[list[str]]]]:
    with RATINGS.open(encoding="utf-8", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: int(r["timestamp"]))
    cuts = np.linspace(0, len(rows), DAYS + 2).astype(int)
    days = []
    for day in range(DAYS):
        path = work / f"ratings-day{day + 1}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["user", "item", "rating", "timestamp"])
            for r in rows[:cuts[day + 1]]:
                writer.writerow([r["userId"], r["movieId"], r["rating"], r["timestamp"]])
        upcoming = [[r["userId"], r["movieId"]] for r in rows[cuts[day + 1]:cuts[day + 2]]]
        days.append((path, upcoming))
    return days


def recall_at_20(table_path: Path, history_csv: Path, upcoming: list[list[str]]) -> float:
    """Mean Recall@20 (hits / min(20, new items)) of users' next-period items by cosine to their history's mean."""
    table = read_embedding_table(str(table_path))
    row_of = {key: row for row, key in enumerate(table.keys)}
    unit = table.unit
    seen: dict[str, set[int]] = {}
    with history_csv.open(encoding="utf-8", newline="") as handle:
        for r in csv.DictReader(handle):
            if r["item"] in row_of:
                seen.setdefault(r["user"], set()).add(row_of[r["item"]])
    targets: dict[str, set[int]] = {}
    for user, item in upcoming:
        if user in seen and item in row_of and row_of[item] not in seen[user]:
            targets.setdefault(user, set()).add(row_of[item])
    recalls = []
    for user, wanted in targets.items():
        history = np.fromiter(seen[user], dtype=np.int64)
        scores = unit @ unit[history].mean(axis=0)
        scores[history] = -np.inf
        top = np.argpartition(-scores, 20)[:20]
        recalls.append(len(wanted & set(top.tolist())) / min(20, len(wanted)))
    return float(np.mean(recalls)) if recalls else float("nan")


def run_part(part: str, work: Path, args: argparse.Namespace) -> list[dict]:
    """Days 1..5 of one part: cold and warm runs, their quality, time and overlap with the previous day."""
    rows: list[dict] = []
    previous: dict[str, Path] = {}
    if part == "text":
        inputs = [(p, None) for p in text_days(work, args.slices, args.window)]
        method, epochs_key, full_epochs = "sgns", "sgns.epochs", args.text_epochs
    else:
        inputs = ratings_days(work)
        method, epochs_key, full_epochs = "item2vec", "item2vec.epochs", args.item_epochs
    variants = [(f"warm e{e or 'default'} lr{lr or 'default'}" if (e, lr) != (None, None) else "warm", e, lr)
                for e in args.warm_epochs for lr in args.warm_step_size]
    common = ["--method", method, "--dim", str(args.dim), "--device", "cpu", "--seed", "7", "--processes", "1"]
    for day, (corpus, upcoming) in enumerate(inputs, start=1):
        prepared = work / f"{part}-prepared{day}"
        if part == "text":
            _run(["tokenize", "--input", str(corpus), "--output", str(prepared), "--min-count", "5"])
        else:
            _run(["histories", "--input", str(corpus), "--output", str(prepared), "--time-column", "timestamp",
                  "--weight-column", "rating", "--rating-threshold", "3.5"])
        for kind, warm_epochs, warm_step in [("cold", None, None), *variants]:
            table = work / f"{part}-{kind.replace(' ', '-')}{day}"
            argv = ["train", "--input", str(prepared), "--output", str(table), *common,
                    "--set", f"{method}.export_output_vectors={table}-output"]
            if kind != "cold":
                if day == 1:  # nothing to start from: day 1's cold table is every warm chain's first parent
                    previous[kind] = previous["cold"]
                    continue
                argv += ["--init-from", str(previous[kind])]
                for key, value in (("warm_epochs", warm_epochs), ("warm_step_size", warm_step)):
                    if value is not None:
                        argv += ["--set", f"{method}.{key}={value}"]
            if full_epochs is not None:
                argv += ["--set", f"{epochs_key}={full_epochs}"]
            seconds = _run(argv)
            stages = SUMMARIES.last.get("stages", {})
            loaded = read_embedding_table(str(table))
            row = {"part": part, "day": day, "run": kind, "seconds": seconds, "train_stage": stages.get("train"),
                   "keys": len(loaded), "epochs": loaded.manifest["params"]["epochs"],
                   "step_size": (loaded.manifest["params"].get("warm_start") or {}).get(
                       "step_size", loaded.manifest["params"].get("step_size")),
                   "warm_start": loaded.manifest["params"].get("warm_start"), "load": os.getloadavg()[0]}
            if part == "text":
                quality = score(loaded.keys, loaded.vectors)
                row.update(ws353=quality.wordsim353, simlex=quality.simlex999, analogy=quality.analogy)
            else:
                row["recall@20"] = recall_at_20(table, corpus, upcoming)
            if kind in previous:
                drift = measure_drift(read_embedding_table(str(previous[kind])), loaded, top=10_000, k=10)
                row.update(overlap=drift.neighbour_overlap, residual=drift.procrustes_residual,
                           added=drift.added_fraction, removed=drift.removed_fraction)
            previous[kind] = table
            rows.append(row)
            log.warning("%s", json.dumps(row, default=str))
    return rows


def render(rows: list[dict]) -> str:
    def f(value: object) -> str:
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else (
            f"{value:.3f}" if isinstance(value, float) else str(value))

    out = ["| part | day | run | epochs | step size | job s | train stage s | warm/cold job, stage | WS353 | SimLex | "
           "analogy | Recall@20 | overlap@10 vs previous day | Procrustes residual | added | removed | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cold = {(r["part"], r["day"]): r for r in rows if r["run"] == "cold"}
    for r in rows:
        base = cold[(r["part"], r["day"])]
        ratio = None if r["run"] == "cold" else (
            f"{r['seconds'] / base['seconds']:.2f}, {(r['train_stage'] or 0) / (base['train_stage'] or 1):.2f}")
        out.append("| " + " | ".join(f(v) for v in (
            r["part"], r["day"], r["run"], r["epochs"], r["step_size"], r["seconds"], r["train_stage"], ratio,
            r.get("ws353"), r.get("simlex"), r.get("analogy"), r.get("recall@20"), r.get("overlap"),
            r.get("residual"), r.get("added"), r.get("removed"), r["load"])) + " |")
    return "\n".join(out)


def _optional_list(kind: type):
    """A comma list of ``kind`` values where ``default`` means the method's default (None)."""
    return lambda text: [None if v.strip() == "default" else kind(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--parts", default="text,movielens")
    parser.add_argument("--slices", type=int, default=8, help="text8 prefix slices (a day is --window of them)")
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--text-epochs", type=int, default=5, help="the cold runs' sgns epochs (its default)")
    parser.add_argument("--item-epochs", type=int, default=None, help="cold item2vec epochs (default: its own)")
    parser.add_argument("--warm-epochs", type=_optional_list(int), default=[None],
                        help="comma list: warm_epochs of the warm chains (default: the method's default)")
    parser.add_argument("--warm-step-size", type=_optional_list(float), default=[None],
                        help="comma list: warm_step_size of the warm chains (default: the method's default)")
    parser.add_argument("--fresh-jobs", action="store_true",
                        help="each train job in its own process (SparkSession, JVM, Python workers), as the "
                             "nightly DAG runs them; without it they share the bench's session")
    args = parser.parse_args(argv)
    FRESH_JOBS["on"] = args.fresh_jobs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    missing = [p for p in (TEXT8, RATINGS) if not p.exists()]
    if missing:
        print(f"bench_warm_start: missing data {', '.join(map(str, missing))} (see ../shared/data)", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-warm-"))
    work.mkdir(parents=True, exist_ok=True)
    spark_session()
    log.info("load before: %s", os.getloadavg())
    rows = []
    for part in args.parts.split(","):
        rows += run_part(part.strip(), work, args)
    log.info("load after: %s", os.getloadavg())
    table = render(rows)
    (work / "bench_warm_start.md").write_text(table + "\n", encoding="utf-8")
    (work / "bench_warm_start.json").write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
