"""Raw text to embedding table, job level: embedpipe's CLI against gensim and MLlib word2vec, side by side.

    python tests/benchmarks/bench_pipeline.py                 # the text8 prefix: speed and quality
    python tests/benchmarks/bench_pipeline.py --repeat 8      # ~17M tokens: speed only
        [--data ../shared/data/text8-prefix/text8-prefix.txt.gz] [--epochs 5] [--cores 2]
        [--systems gensim,embedpipe,word2vec] [--workdir DIR] [--keep]

Every system starts from the same raw text file (the gzip cut into lines of 1,000 tokens, written
``--repeat`` times) and runs as its own process, its start-up included, the way a user runs it:

* ``gensim``: ``Word2Vec(LineSentence(file), workers=--cores)``: reading the file, counting the
  vocabulary and training are all in its time;
* ``embedpipe``: ``embedpipe tokenize --format text --min-count 5`` then ``embedpipe train --method
  sgns`` (defaults), each a CLI process with its own Spark start-up; the table written to Parquet;
* ``word2vec``: MLlib Word2Vec through ``embedpipe train --method word2vec`` on the same tokenize output
  (its epochs set to ``--epochs``; everything else its defaults).

Settings are the issue's: skip-gram, dim 100, window 5, negative 5, sample 1e-3, min_count 5,
``--epochs`` epochs (embedpipe sgns's defaults are these). Words/s = corpus tokens x epochs / wall
seconds; the ratio column is against gensim's end-to-end words/s. Quality: WordSim-353 and SimLex-999
Spearman and Google analogy accuracy (restricted to the 30,000 most frequent words, as gensim's
``evaluate_word_analogies``), from gensim's test data. Per-stage seconds come from the jobs' own
reports (tokenize's ``report.json`` and the ``train done`` summary in the train log). Not a test:
nothing is asserted. Needs ``../shared/data/`` (or ``--data``) and the dev extra (gensim).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.common import Quality, score  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "text8-prefix" / "text8-prefix.txt.gz"
DOCUMENT_TOKENS = 1_000
SYSTEMS = ("gensim", "embedpipe", "word2vec")


@dataclass
class Run:
    system: str
    seconds: float  # end to end, every process of the system
    stages: dict[str, float] = field(default_factory=dict)  # job/stage -> seconds
    quality: Quality | None = None
    error: str | None = None


def write_documents(source: Path, target: Path, repeat: int) -> int:
    """The gzip's tokens as lines of DOCUMENT_TOKENS tokens, the whole text ``repeat`` times; returns tokens."""
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        tokens = handle.read().split()
    lines = [" ".join(tokens[i:i + DOCUMENT_TOKENS]) for i in range(0, len(tokens), DOCUMENT_TOKENS)]
    text = "\n".join(lines) + "\n"
    with target.open("w", encoding="utf-8") as out:
        for _ in range(repeat):
            out.write(text)
    return len(tokens) * repeat


def _timed(argv: list[str], log: Path) -> float:
    """Run ``argv`` to completion (stderr to ``log``); its wall seconds. Raises with the log's tail on failure."""
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as err:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, check=False,
                              env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[:4])} … exited {done.returncode}: {' | '.join(tail)}")
    return seconds


def _summary(log: Path, job: str) -> dict:
    """The JSON of the job's ``<job> done: {...}`` log line (its returned summary)."""
    marker = f"{job} done: "
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
        if marker in line:
            return json.loads(line.split(marker, 1)[1])
    return {}


def _score_table(path: Path) -> Quality:
    from embedpipe.table import read_embedding_table

    table = read_embedding_table(str(path))
    return score(list(table.keys), np.asarray(table.vectors))


def run_gensim(corpus: Path, work: Path, args: argparse.Namespace) -> Run:
    """gensim in its own process (this script's hidden ``--gensim-worker``), vectors saved for scoring."""
    out = work / "gensim"
    seconds = _timed([sys.executable, __file__, "--gensim-worker", str(corpus), str(out), str(args.epochs),
                      str(args.cores)], work / "gensim.log")
    keys = (out.with_suffix(".keys")).read_text(encoding="utf-8").split("\n")
    vectors = np.load(out.with_suffix(".npy"))
    return Run("gensim", seconds, {"gensim (read, count, train)": seconds},
               score(keys, vectors) if args.quality else None)


def gensim_worker(corpus: str, out: str, epochs: str, workers: str) -> None:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    model = Word2Vec(LineSentence(corpus), vector_size=100, window=5, min_count=5, sg=1, hs=0, negative=5,
                     sample=1e-3, epochs=int(epochs), workers=int(workers), seed=42)
    target = Path(out)
    np.save(target.with_suffix(".npy"), model.wv.vectors)
    target.with_suffix(".keys").write_text("\n".join(model.wv.index_to_key), encoding="utf-8")


def _cli(job: str, *argv: str) -> list[str]:
    return [sys.executable, "-m", "embedpipe.cli", job, *argv]


def tokenize(corpus: Path, work: Path, args: argparse.Namespace) -> float:
    """``embedpipe tokenize`` into ``work/tokens`` once; its wall seconds (the first run's, when reused)."""
    if args.tokenize_seconds is None:
        args.tokenize_seconds = _timed(
            _cli("tokenize", "--input", str(corpus), "--format", "text", "--min-count", "5",
                 "--output", str(work / "tokens"), "--master", f"local[{args.cores}]"), work / "tokenize.log")
    return args.tokenize_seconds


def run_embedpipe(corpus: Path, work: Path, args: argparse.Namespace) -> Run:
    master = f"local[{args.cores}]"
    tokens, table = work / "tokens", work / "sgns"
    tokenize_s = tokenize(corpus, work, args)
    report = json.loads((tokens / "report.json").read_text(encoding="utf-8"))
    sgns_flags = [] if args.epochs == 5 else ["--set", f"sgns.epochs={args.epochs}"]
    train_s = _timed(_cli("train", "--method", "sgns", "--input", str(tokens), "--output", str(table),
                          "--master", master, *sgns_flags), work / "train-sgns.log")
    trained = _summary(work / "train-sgns.log", "train")
    stages = {"tokenize (process)": tokenize_s,
              **{f"  tokenize/{k}": v for k, v in report.get("stages", {}).items() if k != "total"},
              "train (process)": train_s,
              **{f"  train/{k}": v for k, v in trained.get("stages", {}).items() if k != "total"},
              **{f"    sgns/{k.removesuffix('_seconds')}": trained[k] for k in
                 ("start_seconds", "import_seconds", "encode_seconds", "train_seconds", "result_seconds")
                 if k in trained}}
    return Run("embedpipe", tokenize_s + train_s, stages, _score_table(table) if args.quality else None)


def run_word2vec(corpus: Path, work: Path, args: argparse.Namespace) -> Run:
    """MLlib on embedpipe's tokenize output: the same tokenize job's time, so the row is end to end too."""
    tokens, table = work / "tokens", work / "word2vec"
    seconds = tokenize(corpus, work, args)
    stages = {"tokenize (process)": seconds}
    train_s = _timed(_cli("train", "--method", "word2vec", "--input", str(tokens), "--output", str(table),
                          "--master", f"local[{args.cores}]", "--set", f"word2vec.epochs={args.epochs}"),
                     work / "train-word2vec.log")
    stages["train (process)"] = train_s
    return Run("word2vec (MLlib)", seconds + train_s, stages, _score_table(table) if args.quality else None)


def render(runs: list[Run], tokens: int, epochs: int) -> str:
    reference = next((r for r in runs if r.system == "gensim" and r.error is None), None)
    words = tokens * epochs
    out = ["| system | wall s | words/s | vs gensim | WS353 | SimLex | analogies |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        if run.error:
            out.append(f"| {run.system} | failed: {run.error} | | | | | |")
            continue
        ratio = f"{(words / run.seconds) / (words / reference.seconds):.2f}x" if reference else "n/a"
        q = run.quality
        quality = (f"{_f(q.wordsim353)} | {_f(q.simlex999)} | {_f(q.analogy)}" if q else "- | - | -")
        out.append(f"| {run.system} | {run.seconds:.1f} | {words / run.seconds:,.0f} | {ratio} | {quality} |")
    out += ["", "| stage | seconds |", "|---|---|"]
    for run in runs:
        out += [f"| {run.system}: {stage} | {seconds:.1f} |" for stage, seconds in run.stages.items()]
    return "\n".join(out)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--gensim-worker":
        gensim_worker(*argv[1:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="gzip of one line of text (text8-style)")
    parser.add_argument("--repeat", type=int, default=1, help="write the text this many times (8: ~17M tokens)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data} not found: the text8 prefix lives in ../shared/data/text8-prefix/ beside the "
                     "project (or pass --data)")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    args.quality = args.repeat == 1  # a repeated text scores nothing meaningful
    args.tokenize_seconds = None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    tokens = write_documents(args.data, corpus, args.repeat)
    load = os.getloadavg()[0]
    print(f"corpus: {tokens:,} tokens in lines of {DOCUMENT_TOKENS}; epochs {args.epochs}; cores {args.cores}; "
          f"load average at start {load:.1f}; work dir {work}", flush=True)
    runners = {"gensim": run_gensim, "embedpipe": run_embedpipe, "word2vec": run_word2vec}
    runs: list[Run] = []
    for system in systems:
        try:
            run = runners[system](corpus, work, args)
        except Exception as exc:  # report and go on with the other systems
            run = Run(system, 0.0, error=str(exc).splitlines()[0][:300])
        runs.append(run)
        print(f"{system}: {'failed: ' + run.error if run.error else f'{run.seconds:.1f} s'}", flush=True)
    table = render(runs, tokens, args.epochs)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}\n\n{table}")
    (work / "bench_pipeline.md").write_text(table + "\n", encoding="utf-8")
    if not args.keep and args.workdir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
