"""Recommendation methods side by side: training throughput and Recall@20 / NDCG@20 on one split.

    python tests/benchmarks/bench_recommend.py --data ../shared/data/movielens-latest-small/ratings.csv
        [--seeds 3] [--ease 100,300,1000] [--no-als-grid] [--generated-users 2000] [--dim 32]

``--data``: the temporal protocol of docs/recommendation-protocol.md (positives rating >= 4, per
user the latest 20% held out, full ranking) on a ratings log, and on a generated log with
``--generated-users``. The references run on the same split in NumPy
(tests/benchmarks/recommend_references.py): popularity, EASE for each ``--ease`` lambda and Spark
ALS over its small grid; then every method trains through the CLI for each of ``--seeds`` seeds
and is scored by ``evaluate`` its consumer's ways: the table alone (cosine; dot too for als and
popularity) and input . output vectors where the method exports them. Means over the seeds.
Without ``--data``, the throughput comparison below:

    python tests/benchmarks/bench_recommend.py [--users 1000000] [--items 400] [--holdout-items 5]
        [--dim 32] [--epochs N] [--bag-epochs N] [--methods popularity,als,item2vec,softmax] [--cores 2]
        [--item2vec-settings window=10] [--variants "item2vec:epochs=10;als:reg=1,alpha=40"]
        [--workdir DIR] [--skip-udata]

Data: :func:`embedpipe.demo.generator.generate_watch_log` (``--users`` users x about 50 distinct
items each, planted audience/style segments) written as CSV, and the same rows again as a
MovieLens-format ``u.data`` (tab separated ``user item rating timestamp``, integer ids, no header).
For each of the two files: ``embedpipe histories --holdout random`` (the same split for every
method), then ``embedpipe train --method M`` for each method, then one ``embedpipe evaluate
--histories ... --compare ...`` over every table that trained. item2vec and the softmax tie their output
weights by default (one table, scored alone); with ``tied=false`` (the default ``--variants``, for the
methods run) they export their output vectors and are scored a second time as two towers
(``evaluate --table <input vectors> --candidate-table <output vectors>``, dot: the score each model
was trained on): that variant's row is the two towers and ``<method> (input only)`` its input table
alone (cosine). item2vec runs with
``--item2vec-settings`` (default: the job's, without subsampling, where its two towers reach ALS's
Recall@20 on the planted log; see docs/methods/item2vec.md); ``--variants`` adds runs of a
method with other settings (``;`` between variants, each ``method:key=value,key=value`` with the
settings passed as ``--set <method>.<key>``, e.g. ``item2vec:window=10`` or ``als:alpha=10``; a
two-tower method gets both rows), so baselines get the same tuning chances as the new models. All jobs run
in-process through
``embedpipe.cli.main`` (one SparkSession); a method whose training fails (not built yet, a bug, a
bad setting) is reported as "not available" with its exit status or exception, and the others go
on. Throughput is training interactions / the train job's wall-clock seconds (Spark start-up of
the shared session excluded, the job's reading and writing included); the passes column says how
many sweeps a method made over them. Prints a Markdown table (and writes it to
``<workdir>/bench_recommend.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.cli import main as cli  # noqa: E402
from embedpipe.demo.generator import generate_watch_log  # noqa: E402
from embedpipe.methods.settings import ALSSettings, SoftmaxSettings  # noqa: E402
from embedpipe.table import MANIFEST_FILE  # noqa: E402
from tests.benchmarks.common import spark_session  # noqa: E402

log = logging.getLogger("bench_recommend")
QUIET = ["--log-level", "WARNING"]


def write_udata(csv_path: Path, udata_path: Path) -> int:
    """The generated CSV log as MovieLens ``u.data``: integer user/item ids, tab separated, no header."""
    import pandas as pd

    udata_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with udata_path.open("w", encoding="utf-8") as out:
        for chunk in pd.read_csv(csv_path, dtype={"user": str, "item": str}, chunksize=2_000_000):
            frame = pd.DataFrame({
                "user": chunk["user"].str[1:].astype("int64"),
                "item": chunk["item"].str[1:].astype("int64"),
                "rating": chunk["rating"],
                "timestamp": chunk["timestamp"],
            })
            frame.to_csv(out, sep="\t", header=False, index=False)
            rows += len(frame)
    return rows


#: The default variants: item2vec and the softmax untied, scored as two towers beside their tied tables.
TWO_TOWERS = "item2vec:tied=false;softmax:tied=false"


def exports_output(method: str, settings: dict[str, str]) -> bool:
    """Whether the run exports output vectors, scored against its input vectors (two towers): item2vec and
    the softmax only with ``tied=false`` (by default both tie them: one table, scored alone)."""
    return method in ("item2vec", "softmax") and settings.get("tied") == "false"


def method_arguments(method: str, output: Path, args: argparse.Namespace, settings: dict[str, str]) -> list[str]:
    if method == "popularity":
        return []
    extra = [arg for key, value in settings.items() if key not in ("dim", "epochs")
             for arg in ("--set", f"{method}.{key}={value}")]
    if method == "als":
        return ["--dim", str(args.dim), *extra]  # the job's iterations unless a variant sets them
    two_towers = (["--set", f"{method}.export_output_vectors={output}-output"] if exports_output(method, settings)
                  else [])
    dim = ["--dim", settings.get("dim", str(args.dim))]
    if method == "softmax":  # the method's own epochs unless --bag-epochs is given
        epochs = ["--set", f"softmax.epochs={args.bag_epochs}"] if args.bag_epochs else []
        return [*dim, *epochs, *two_towers, *extra]
    epochs = settings.get("epochs") or (str(args.epochs) if args.epochs else None)  # else the method's default
    return [*dim, *(["--set", f"{method}.epochs={epochs}"] if epochs else []), *two_towers, *extra]


def passes(method: str, args: argparse.Namespace, settings: dict[str, str], table: Path) -> int:
    """Sweeps over the training interactions: the epochs the table's manifest records, else the settings'."""
    manifest = table / MANIFEST_FILE
    if manifest.exists():
        recorded = json.loads(manifest.read_text(encoding="utf-8")).get("params", {}).get("epochs")
        if recorded:
            return int(recorded)
    bag_epochs = args.bag_epochs or SoftmaxSettings().epochs or 0  # None: the job resolves it (the manifest says)
    fixed = {"popularity": 1, "als": int(settings.get("iterations", ALSSettings().iterations)),
             "softmax": int(settings.get("epochs", bag_epochs))}
    return int(settings.get("epochs") or fixed.get(method, args.epochs or 1))


def runs(args: argparse.Namespace) -> list[tuple[str, str, dict[str, str]]]:
    """(label, method, extra settings) of every training run: the methods, then the variants."""
    base = _settings(args.item2vec_settings)
    planned = [(method, method, base if method == "item2vec" else {}) for method in args.methods]
    for variant in filter(None, (v.strip() for v in args.variants.split(";"))):
        method, _, settings = variant.partition(":")
        if not settings:
            raise SystemExit(f"--variants: {variant!r} is not method:key=value[,key=value]")
        if args.variants == TWO_TOWERS and method.strip() not in args.methods:
            continue  # the default variants only for the methods asked for
        planned.append((f"{method.strip()}[{settings.replace(' ', '')}]", method.strip(), _settings(settings)))
    return planned


def _settings(text: str) -> dict[str, str]:
    """``key=value,key=value`` -> dict (empty text: no settings)."""
    return dict(item.strip().split("=", 1) for item in text.split(",") if item.strip())


def evaluate(tables: list[str], histories: Path, report_dir: Path, candidates: str | None = None,
             score: str = "auto") -> list[dict]:
    """``evaluate`` of ``tables`` (the first against ``candidates`` when given): the report's table entries."""
    code = cli(["evaluate", "--table", tables[0], *(["--compare", ",".join(tables[1:])] if tables[1:] else []),
                *(["--candidate-table", candidates] if candidates else []), "--score", score,
                "--histories", str(histories), "--output", str(report_dir), "--k-values", "10,20,50", *QUIET])
    if code != 0:
        raise SystemExit(f"evaluate of {tables} failed (exit {code})")
    return json.loads((report_dir / "report.json").read_text(encoding="utf-8"))["recommendation"]["tables"]


def run_dataset(name: str, log_path: Path, work: Path, args: argparse.Namespace) -> list[dict]:
    histories = work / f"{name}-histories"
    started = time.perf_counter()
    code = cli(["histories", "--input", str(log_path), "--output", str(histories), "--holdout", "random",
                "--holdout-items", str(args.holdout_items), *QUIET])
    if code != 0:
        raise SystemExit(f"histories failed on {log_path} (exit {code})")
    report = json.loads((histories / "report.json").read_text(encoding="utf-8"))
    training = report["holdout"]["training_interactions"]
    log.info("%s: histories in %.1f s: %s", name, time.perf_counter() - started, report["holdout"])
    rows, tables = [], []
    for label, method, settings in runs(args):
        output = work / f"{name}-{_slug(label)}"
        started = time.perf_counter()
        try:
            code = cli(["train", "--input", str(histories), "--output", str(output), "--method", method,
                        *method_arguments(method, output, args, settings), *QUIET])
            status = "ok" if code == 0 else f"not available (exit {code})"
        except Exception as exc:  # noqa: BLE001 - a method built by someone else may not exist yet
            status = f"not available ({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})"
        seconds = time.perf_counter() - started
        rows.append({"dataset": name, "method": label, "kind": method, "table": str(output), "status": status,
                     "two_towers": exports_output(method, settings),
                     "seconds": seconds, "interactions": training, "passes": passes(method, args, settings, output)})
        if status == "ok":
            tables.append(str(output))
        log.info("%s %s: %s in %.1f s", name, label, status, seconds)
    if not tables:
        return rows
    by_table = {entry["table"]: entry for entry in evaluate(tables, histories, work / f"{name}-report")}
    scored = []
    for row in rows:
        entry = by_table.get(row["table"])
        if entry is None:
            scored.append(row)
            continue
        if not row["two_towers"]:
            scored.append({**row, **_scored(entry)})
            continue
        input_only = {**row, "method": f"{row['method']} (input only)", **_scored(entry)}
        try:
            pair = evaluate([row["table"]], histories, Path(f"{row['table']}-report"), f"{row['table']}-output")[0]
        except SystemExit as exc:  # e.g. hidden layers: the user tower is no mean of item vectors
            scored += [{**row, "status": f"two towers not scored ({exc})"}, input_only]
            continue
        # the two towers are the model's own score; the input table alone (cosine) is the secondary row
        scored += [{**row, **_scored(pair)}, input_only]
    return scored


#: The temporal protocol of docs/recommendation-protocol.md on a ratings log (MovieLens's or the generator's columns).
PROTOCOL = ["--time-column", "timestamp", "--weight-column", "rating", "--rating-threshold", "4", "--holdout", "last",
            "--holdout-fraction", "0.2", "--holdout-min-train-items", "4"]
METRIC_KEYS = ("recall@10", "recall@20", "recall@50", "ndcg@10", "ndcg@20", "ndcg@50", "coverage@20")


def run_protocol(name: str, log_path: Path, work: Path, args: argparse.Namespace) -> list[dict]:
    """One temporal split of ``log_path``; the references, then every method over ``--seeds`` seeds (means)."""
    from tests.benchmarks.recommend_references import ease, load_split, popularity, spark_als

    histories = work / f"{name}-histories"
    user, item = ("userId", "movieId") if log_path.name == "ratings.csv" else ("user", "item")
    if cli(["histories", "--input", str(log_path), "--output", str(histories), "--user-column", user,
            "--item-column", item, *PROTOCOL, *QUIET]) != 0:
        raise SystemExit(f"histories failed on {log_path}")
    log.info("%s: %s", name, json.loads((histories / "report.json").read_text(encoding="utf-8"))["holdout"])
    split = load_split(histories)
    rows = [_protocol_row(name, "popularity (reference, NumPy)", "count", [popularity(split)])]
    rows += [_protocol_row(name, f"EASE lambda={lam:g}", "x_u B", [m]) for lam, m in ease(split, args.ease).items()]
    if args.als_grid:
        rows += [_protocol_row(name, f"Spark ALS rank={r} reg={g:g} alpha={a:g}", "dot", [m])
                 for (r, g, a), m in spark_als(split).items()]
    scored: dict[tuple[str, str], list[dict]] = {}
    for seed in range(1, args.seeds + 1):
        for label, method, settings in runs(args):
            output = work / f"{name}-{_slug(label)}-seed{seed}"
            if cli(["train", "--input", str(histories), "--output", str(output), "--method", method, "--seed",
                    str(seed), *method_arguments(method, output, args, settings), *QUIET]) != 0:
                log.warning("%s seed %d: train failed", label, seed)
                continue
            report = Path(f"{output}-report")
            ways = [("table alone", "cosine", None)] if method != "popularity" else []
            if method in ("als", "popularity"):
                ways.append(("table alone", "dot", None))
            if exports_output(method, settings):
                ways.append(("input . output", "dot", f"{output}-output"))
            for way, score, candidates in ways:
                entry = evaluate([str(output)], histories, Path(f"{report}-{score}-{bool(candidates)}"), candidates,
                                 score)[0]
                scored.setdefault((label, f"{way} ({score})"), []).append(entry["metrics"])
            log.info("%s seed %d: %s", label, seed, {k: v[-1]["recall@20"] for k, v in scored.items() if k[0] == label})
    rows += [_protocol_row(name, label, way, metrics) for (label, way), metrics in scored.items()]
    return rows


def _protocol_row(dataset: str, method: str, way: str, runs_metrics: list[dict]) -> dict:
    means = {key: sum(m[key] for m in runs_metrics) / len(runs_metrics) for key in METRIC_KEYS}
    return {"dataset": dataset, "method": method, "score": way, "runs": len(runs_metrics), **means}


def render_protocol(rows: list[dict]) -> str:
    out = ["| dataset | method | scored by | runs | " + " | ".join(k.replace("@", "@") for k in METRIC_KEYS) + " |",
           "|---|---|---|---|" + "---|" * len(METRIC_KEYS)]
    out += [f"| {r['dataset']} | {r['method']} | {r['score']} | {r['runs']} | "
            + " | ".join(f"{r[k]:.4f}" for k in METRIC_KEYS) + " |" for r in rows]
    return "\n".join(out)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label)


def _scored(entry: dict) -> dict:
    score = entry["score"] + (" (two towers)" if entry.get("candidate_table") else "")
    return {"recall": entry["metrics"]["recall@20"], "ndcg": entry["metrics"]["ndcg@20"],
            "coverage": entry["metrics"]["coverage@20"], "score": score}


def render(rows: list[dict]) -> str:
    out = ["| dataset | method | train s | training interactions | passes | interactions/s | score | Recall@20 | "
           "NDCG@20 | Coverage@20 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            out.append(f"| {r['dataset']} | {r['method']} | {r['status']} | {r['interactions']:,} | | | | | | |")
            continue
        out.append(
            f"| {r['dataset']} | {r['method']} | {r['seconds']:.1f} | {r['interactions']:,} | {r['passes']} | "
            f"{r['interactions'] / r['seconds']:,.0f} | {r.get('score', '')} | {r.get('recall', float('nan')):.4f} | "
            f"{r.get('ndcg', float('nan')):.4f} | {r.get('coverage', float('nan')):.4f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--holdout-items", type=int, default=5)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=None,
                        help="item2vec epochs (default: the job's, scaled to the training interactions)")
    parser.add_argument("--bag-epochs", type=int, default=None, help="softmax epochs (default: the job's)")
    parser.add_argument("--methods", default="popularity,als,item2vec,softmax")
    parser.add_argument("--item2vec-settings", default="",
                        help="item2vec's key=value settings (',' between them; '' for the job's defaults)")
    parser.add_argument("--variants", default=TWO_TOWERS,
                        help="more runs: ';' between variants, each method:key=value[,key=value] (default: the "
                             "two-tower runs of item2vec and the softmax; '' for none)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--skip-udata", action="store_true", help="only the generated CSV log")
    parser.add_argument("--data", default=None,
                        help="a ratings log (MovieLens ratings.csv): the temporal protocol with the references")
    parser.add_argument("--generated-users", type=int, default=0,
                        help="--data: also a generated log of this many users on the same protocol")
    parser.add_argument("--seeds", type=int, default=3, help="--data: seeds per embedpipe method (means reported)")
    parser.add_argument("--ease", default="100,300,1000", help="--data: EASE lambdas")
    parser.add_argument("--no-als-grid", dest="als_grid", action="store_false", help="--data: skip Spark ALS")
    args = parser.parse_args(argv)
    args.ease = [float(x) for x in args.ease.split(",") if x]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-recommend-"))
    work.mkdir(parents=True, exist_ok=True)
    spark_session(args.cores)  # the jobs below reuse this session (getOrCreate)
    if args.data:
        return protocol_main(args, work)
    started = time.perf_counter()
    info = generate_watch_log(work / "watch.csv", users=args.users, seed=args.seed, items=args.items)
    log.info("generated %d interactions of %d users in %.1f s", info.interactions, args.users,
             time.perf_counter() - started)
    rows = run_dataset("generated", info.path, work, args)
    if not args.skip_udata:
        udata = work / "movielens" / "u.data"
        write_udata(info.path, udata)
        rows += run_dataset("u.data", udata, work, args)
    table = render(rows)
    (work / "bench_recommend.md").write_text(table + "\n", encoding="utf-8")
    print(f"{args.users:,} users x {args.items} items, {info.interactions:,} interactions, holdout random "
          f"{args.holdout_items} per user, dim {args.dim}, {args.cores} cores; work dir {work}\n")
    print(table)
    return 0


def protocol_main(args: argparse.Namespace, work: Path) -> int:
    """``--data``: the ratings log and (``--users`` > 0) a generated log, each on the temporal protocol."""
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"--data {data} not found (MovieLens latest-small: ../shared/data/movielens-latest-small/)")
    rows = run_protocol(data.parent.name or "data", data, work, args)
    if args.generated_users:
        info = generate_watch_log(work / "watch.csv", users=args.generated_users, seed=args.seed, items=args.items)
        rows += run_protocol("generated", info.path, work, args)
    table = render_protocol(rows)
    (work / "bench_recommend.md").write_text(table + "\n", encoding="utf-8")
    print(f"temporal protocol (docs/recommendation-protocol.md), dim {args.dim}, {args.seeds} seeds, {args.cores} "
          f"cores; work dir {work}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
