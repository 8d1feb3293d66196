"""Quality of data-parallel SGNS / fasttext / item2vec as the replica count grows, combine rules side by side.

    python tests/benchmarks/bench_replicas.py [--corpora text8,demo,movielens,fasttext] [--replicas 1,2,4,8,16]
        [--seeds 1,2,3] [--schemes sgns_sync,sum_updates,touched_mean,saturation] [--text8-tokens 2139748]
        [--demo-documents 100000] [--jobs 2,4] [--workdir DIR]

What ``train --processes N`` computes, simulated in one process: the rows are split as the job
splits them (Spark's ``repartition(N, doc_id)``, i.e. ``pmod(hash(doc_id), N)``, each partition
sorted by ``doc_id``), and N threads each run :func:`embedpipe.torchtrain.train_sgns` (or
``train_fasttext``) with the job's params (``threads = 1``) and a
:class:`~embedpipe.methods.barrier.ReplicaGroup` whose all-reduce is an in-process sum in rank order
instead of torch.distributed, at the same rounds
(``averages_per_epoch`` per epoch and every epoch end). ``--schemes`` compares the combine rules:
``sgns_sync`` (the job's since issue 25: :class:`~embedpipe.methods.sgns_sync.SGNSReplicaGroup`, the
hottest rows every 192 tokens per replica and every row's sum scaled by its saturation; fasttext's too),
``sum_updates`` (the job's before: the replicas' updates summed), ``touched_mean`` and ``saturation``
(measured for issue 25, kept here only: each row's summed updates divided by the replicas that touched
it, or by as much of that as the row's expected updates per round saturate it, 10 rounds per epoch
only; docs/decisions.md).
``--jobs 2,4`` also runs the real job (``embedpipe train --processes N``, ``local[N]``, gloo) on the
first seed for each corpus, to confirm the simulation.

Corpora (real data under ``/work/shared/data``; a clear message if missing):

* ``text8``: the text8 prefix cut into 1,000-token documents, ``embedpipe tokenize`` (min count 5),
  ``sgns`` defaults with dim 100: WS353 / SimLex-999 Spearman and Google analogies (top 30k);
* ``demo``: the planted demo corpus (:func:`embedpipe.demo.generator.generate_corpus`, seed 7),
  scored on its planted similarity and analogy files;
* ``fasttext``: the ``text8`` corpus trained with ``fasttext`` defaults (dim 100, n-grams 3-6), scored on
  the composed word vectors like ``text8``;
* ``movielens``: MovieLens latest-small, ratings >= 4, the latest 20% of each user's items held
  out (``histories --holdout last --holdout-fraction 0.2``), ``item2vec`` defaults with dim 32:
  Recall@20 of the two towers (user = mean of its training items' input vectors, dot with the
  output vectors, seen items excluded).

Prints one Markdown table per corpus (mean and spread over seeds, the mean epoch losses) and writes
them to ``<workdir>/bench_replicas.md``; quality only, so the shared machine's load does not matter.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.cli import main as cli  # noqa: E402
from embedpipe.methods.barrier import ReplicaGroup  # noqa: E402
from embedpipe.methods.fasttext import FASTTEXT_HOT_ROWS  # noqa: E402
from embedpipe.methods.sgns_sync import SGNSReplicaGroup, plan_sync  # noqa: E402
from tests.benchmarks.common import score, spark_session  # noqa: E402

log = logging.getLogger("bench_replicas")
DATA = Path("/work/shared/data")
QUIET = ["--log-level", "WARNING"]
AVERAGES_PER_EPOCH = 10  # the job's default (train.averages_per_epoch)


# ----------------------------------------------------------------------------- N replicas in one process


class _Collective:
    """An all-reduce (sum, in rank order) among ``world`` threads."""

    def __init__(self, world: int):
        self.world = world
        self.barrier = threading.Barrier(world)
        self.slots: list[Any] = [None] * world
        self.result: Any = None

    def all_reduce(self, rank: int, tensor: Any) -> None:
        self.slots[rank] = tensor
        if self.barrier.wait() == 0:
            total = self.slots[0].clone()
            for other in self.slots[1:]:
                total += other
            self.result = total
        self.barrier.wait()
        tensor.copy_(self.result)
        self.barrier.wait()


class SimulatedGroup(ReplicaGroup):
    """The job's :class:`ReplicaGroup` with the all-reduce done among threads."""

    def __init__(self, *args: Any, rank: int, collective: _Collective, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rank = rank
        self.collective = collective
        self.touched: list[int] = []  # rows touched by any replica, per round and tensor

    def all_reduce(self, tensor: Any) -> None:
        self.collective.all_reduce(self.rank, tensor)

    def world_size(self) -> int:
        return self.collective.world

    def combine_rows(self, tensor: Any, base: Any) -> None:
        if self.rank == 0:
            self.touched.append(int(tensor.ne(base).any(dim=1).sum()))  # this replica's rows (for docs/scaling.md)
        super().combine_rows(tensor, base)


class TouchedMean(SimulatedGroup):
    """An alternative measured here (it lost, docs/decisions.md): each row's summed updates divided by the
    number of replicas whose copy of it changed (one extra all-reduce of the counts)."""

    def combine_rows(self, tensor: Any, base: Any) -> None:
        if self.rank == 0:
            self.touched.append(int(tensor.ne(base).any(dim=1).sum()))
        rows = tensor.view(tensor.shape[0], -1)
        rows.sub_(base.view(rows.shape))
        touched = rows.ne(0).any(dim=1).to(rows.dtype)
        self.all_reduce(rows)
        self.all_reduce(touched)
        rows.div_(touched.clamp_(min=1).unsqueeze(1))
        rows.add_(base.view(rows.shape))
        base.copy_(tensor)


class SaturationCorrected(SimulatedGroup):
    """Also measured here (closest, not adopted): a row's summed updates divided by N only as far as its
    expected updates per round saturate it, ``(1 - (1 - s)^k) / (k s)`` with ``s = 1 - exp(-C lr n)``."""

    C = 0.2  # fitted on the demo corpus, seed 1 (0.1 was unstable, 0.5 and more closer to the touched mean)
    expected: tuple[Any, Any] = ()  # per-row expected updates per replica per round (input, output); set per run
    schedule: tuple[float, float, int] = (0.0, 0.0, 1)  # lr, min_lr, epochs

    def sync(self, state: Any, progress: float) -> None:
        lr, min_lr, epochs = self.schedule
        self.lr = lr - (lr - min_lr) * min(1.0, progress / epochs)
        self.tensor_index = 0
        super().sync(state, progress)

    def combine_rows(self, tensor: Any, base: Any) -> None:
        n = self.expected[self.tensor_index % 2]
        self.tensor_index += 1
        rows = tensor.view(tensor.shape[0], -1)
        rows.sub_(base)
        k = rows.ne(0).any(dim=1).to(rows.dtype)
        self.all_reduce(rows)
        self.all_reduce(k)
        k.clamp_(min=1)
        s = (-(self.C * self.lr) * n).exp_().neg_().add_(1).clamp_(min=1e-6)
        rows.mul_(((1 - (1 - s).pow(k)) / (k * s)).unsqueeze(1))
        rows.add_(base)
        base.copy_(tensor)


class SimulatedSGNSGroup(SimulatedGroup, SGNSReplicaGroup):
    """The job's SGNS combine (hot rounds, saturation-scaled sums) with the all-reduce done among threads."""


def saturation_group(counts: np.ndarray, params: dict[str, Any], world: int) -> type[SaturationCorrected]:
    """:class:`SaturationCorrected` for this corpus and replica count (expected updates from the counts)."""
    import torch

    from embedpipe.torchtrain.corpus import keep_probabilities, noise_distribution

    counts = counts.astype(np.float64)
    per_round = counts.sum() / (world * AVERAGES_PER_EPOCH)
    contexts = params["window"] + 1 if params["shrink_window"] else 2 * params["window"]
    n_in = keep_probabilities(counts, params["sample"]) * counts / counts.sum() * per_round * contexts
    n_out = n_in + n_in.sum() * params["negative"] * noise_distribution(counts)
    expected = (torch.from_numpy(n_in.astype(np.float32)), torch.from_numpy(n_out.astype(np.float32)))
    schedule = (params["lr"], params["min_lr"], params["epochs"])
    return type("Saturation", (SaturationCorrected,), {"expected": expected, "schedule": schedule})


@dataclass
class Run:
    input_vectors: np.ndarray
    output_vectors: np.ndarray
    losses: list[float]  # mean over replicas of each epoch's mean loss
    touched: list[int]  # rank 0's touched rows per combine (both matrices)
    norm: float  # mean input-vector norm


def split_like_the_job(spark: Any, sentences: Any, replicas: int) -> list[pa.Array]:
    """Each partition's token lists as ``repartition(replicas, doc_id).sortWithinPartitions(doc_id)`` gives them."""
    from pyspark.sql import functions as F

    table = sentences.withColumn("part", F.expr(f"pmod(hash(doc_id), {replicas})")).toArrow()
    parts = []
    for part in range(replicas):
        rows = table.filter(pc.equal(table.column("part"), part))
        rows = rows.take(pc.sort_indices(rows, sort_keys=[("doc_id", "ascending")]))
        parts.append(rows.column("tokens").combine_chunks())
    return parts


def simulate(parts: list[pa.Array], keys: pa.Array, counts: np.ndarray, params_dict: dict[str, Any],
             scheme: str, subwords: Any = None) -> Run:
    """Train ``len(parts)`` replicas as the job's barrier tasks would, in threads (fastText's with ``subwords``)."""
    from embedpipe.torchtrain import IdCorpus, SGNSParams, TrainingState, encode_sentences, train_sgns
    from embedpipe.torchtrain.subword_train import FastTextParams, initial_state, train_fasttext

    world = len(parts)
    params = SGNSParams(**params_dict) if subwords is None else FastTextParams(**params_dict)
    corpora = [encode_sentences(p, keys) if len(p) else IdCorpus.concat([]) for p in parts]
    total = sum(c.n_tokens for c in corpora)

    def train(corpus: Any, **kwargs: Any) -> Any:
        if subwords is None:
            return train_sgns(corpus, counts, params, counts_total=total, **kwargs)
        return train_fasttext(corpus, counts, params, subwords, counts_total=total, **kwargs)

    if world == 1:
        result = train(corpora[0])
        return Run(result.input_vectors, result.output_vectors, result.epoch_losses, [],
                   float(np.linalg.norm(result.input_vectors, axis=1).mean()))
    collective = _Collective(world)
    groups = {"sgns_sync": SimulatedSGNSGroup, "sum_updates": SimulatedGroup, "touched_mean": TouchedMean}
    group_class = saturation_group(counts, params_dict, world) if scheme == "saturation" else groups[scheme]

    def initial(state: Any) -> tuple[Any, Any]:
        start = (TrainingState.initial(state.vocab_size, params, state.w_in.device) if subwords is None
                 else initial_state(subwords, params))
        return start.w_in, start.w_out

    rows, hot = (None, None) if subwords is None else ((subwords.offsets, subwords.rows, subwords.n_rows),
                                                       FASTTEXT_HOT_ROWS)
    extra = {"plan": plan_sync(counts, params, world, AVERAGES_PER_EPOCH, input_rows=rows, hot_rows=hot)} \
        if scheme == "sgns_sync" else {}
    groups = [group_class(AVERAGES_PER_EPOCH, lambda s: (s.w_in, s.w_out), initial_of=initial, rank=r,
                          collective=collective, **extra) for r in range(world)]
    results: list[Any] = [None] * world
    errors: list[BaseException] = []

    def replica(rank: int) -> None:
        try:
            results[rank] = train(corpora[rank], replica_sync=groups[rank])
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            collective.barrier.abort()

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    losses = np.mean([r.epoch_losses for r in results], axis=0).tolist()
    first = results[0]
    return Run(first.input_vectors, first.output_vectors, losses, groups[0].touched,
               float(np.linalg.norm(first.input_vectors, axis=1).mean()))


# ----------------------------------------------------------------------------- corpora


@dataclass
class Corpus:
    name: str
    path: Path  # the tokenize / histories output
    method: str  # sgns, fasttext or item2vec
    scorer: Callable[[Run], dict[str, float]]
    params: dict[str, Any]  # the job's params at seed 0 (the seed is set per run)


def text8_documents(target: Path, tokens: int) -> Path:
    source = DATA / "text8-prefix" / "text8-prefix.txt.gz"
    if not source.exists():
        raise SystemExit(f"text8 prefix not found at {source} (see /work/shared/data)")
    words = gzip.open(source, "rt", encoding="ascii").read().split()[:tokens]
    target.write_text("\n".join(" ".join(words[i:i + 1000]) for i in range(0, len(words), 1000)) + "\n")
    return target


def fasttext_params(path: Path, dim: int) -> dict[str, Any]:
    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.fasttext import fasttext_params as job_params

    return job_params(TrainConfig(input=str(path), output="unused", method="fasttext", dim=dim, device="cpu",
                                  threads=1))


def sgns_params(path: Path, dim: int) -> dict[str, Any]:
    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.sgns import sgns_params as job_params

    return job_params(TrainConfig(input=str(path), output="unused", method="sgns", dim=dim, device="cpu",
                                  threads=1))


def prepare(spark: Any, name: str, work: Path, args: argparse.Namespace) -> Corpus:
    work.mkdir(parents=True, exist_ok=True)
    if name in ("text8", "fasttext"):
        text = text8_documents(work / "text8.txt", args.text8_tokens)
        tokens = work / "text8-tokens"
        _cli(["tokenize", "--input", str(text), "--output", str(tokens), "--min-count", "5"])
        keys = _keys(tokens)
        method, params = ("sgns", sgns_params(tokens, 100)) if name == "text8" else ("fasttext",
                                                                                     fasttext_params(tokens, 100))
        return Corpus(name, tokens, method, lambda run: _word_scores(keys, run.input_vectors), params)
    if name == "demo":
        from embedpipe.demo.generator import generate_corpus, write_analogy_file, write_similarity_file

        text = work / "demo.txt"
        info = generate_corpus(text, documents=args.demo_documents, seed=7)
        planted = (write_similarity_file(work / "demo-sim.tsv", info), write_analogy_file(work / "demo-analogy.txt",
                                                                                          info))
        tokens = work / "demo-tokens"
        _cli(["tokenize", "--input", str(text), "--output", str(tokens), "--min-count", "5"])
        keys = _keys(tokens)
        return Corpus(name, tokens, "sgns", lambda run: _word_scores(keys, run.input_vectors, planted),
                      sgns_params(tokens, 100))
    if name == "movielens":
        ratings = DATA / "movielens-latest-small" / "ratings.csv"
        if not ratings.exists():
            raise SystemExit(f"MovieLens not found at {ratings} (see /work/shared/data)")
        histories = work / "movielens-histories"
        _cli(["histories", "--input", str(ratings), "--output", str(histories), "--user-column", "userId",
              "--item-column", "movieId", "--time-column", "timestamp", "--weight-column", "rating",
              "--rating-threshold", "4", "--holdout", "last", "--holdout-fraction", "0.2",
              "--holdout-min-train-items", "4"])
        return Corpus(name, histories, "item2vec", _recall_scorer(spark, histories), _item2vec_params(spark, histories))
    raise SystemExit(f"unknown corpus {name!r}")


def _cli(argv: list[str]) -> None:
    code = cli([*argv, *QUIET])
    if code != 0:
        raise SystemExit(f"embedpipe {' '.join(argv)} failed (exit {code})")


def _keys(path: Path) -> list[str]:
    import pyarrow.dataset as pads

    vocab = pads.dataset(str(path / "vocab")).to_table(columns=["token", "id"]).sort_by("id")
    return vocab.column("token").to_pylist()


def _word_scores(keys: list[str], vectors: np.ndarray, planted: tuple[Path, Path] | None = None) -> dict[str, float]:
    q = score(keys, vectors, planted=planted)
    out = {"similarity" if planted else "WS353": q.wordsim353, "analogy": q.analogy}
    if not planted:
        out["SimLex"] = q.simlex999
    return out


def _item2vec_params(spark: Any, histories: Path) -> dict[str, Any]:
    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.inputs import read_training_input
    from embedpipe.methods.item2vec import item2vec_params

    data = read_training_input(spark, str(histories))
    interactions = int(data.vocab.agg({"count": "sum"}).first()[0])
    config = TrainConfig(input=str(histories), output="unused", method="item2vec", dim=32, device="cpu", threads=1,
                         settings={"export_output_vectors": "unused-output"})  # two towers: two matrices
    return item2vec_params(config, interactions=interactions)


def _recall_scorer(spark: Any, histories: Path) -> Callable[[Run], dict[str, float]]:
    """Recall@20 of the two towers over the held-out users (the evaluate job's definition)."""
    import pyarrow.dataset as pads

    from embedpipe.methods.inputs import read_training_input

    data = read_training_input(spark, str(histories))
    item_ids = {k: i for i, k in enumerate(_keys(histories))}
    train = {r["doc_id"]: r["tokens"] for r in data.sentences().toArrow().to_pylist()}
    heldout = pads.dataset(str(histories / "heldout")).to_table().to_pylist()
    user_column = next(c for c in heldout[0] if c not in ("items", "item"))
    item_column = "items" if "items" in heldout[0] else "item"
    held: dict[str, set[str]] = {}
    for row in heldout:
        values = row[item_column] if isinstance(row[item_column], list) else [row[item_column]]
        held.setdefault(str(row[user_column]), set()).update(str(v) for v in values)
    users = [u for u in held if u in train]
    names = list(item_ids)

    def recall(run: Run) -> dict[str, float]:
        scores = []
        for user in users:
            seen = [item_ids[i] for i in train[user] if i in item_ids]
            s = run.input_vectors[seen].mean(axis=0) @ run.output_vectors.T
            s[seen] = -np.inf
            top = {names[j] for j in np.argpartition(-s, 20)[:20]}
            scores.append(len(top & held[user]) / len(held[user]))
        return {"Recall@20": float(np.mean(scores))}

    return recall


# ----------------------------------------------------------------------------- the benchmark


def bench(spark: Any, corpus: Corpus, args: argparse.Namespace) -> list[dict[str, Any]]:
    from embedpipe.methods.inputs import read_training_input

    data = read_training_input(spark, str(corpus.path))
    vocab = data.vocab.select("token", "count", "id").orderBy("id").toArrow()
    keys, counts = vocab.column("token").combine_chunks(), vocab.column("count").to_numpy().astype(np.int64)
    sentences = data.sentences().select("doc_id", "tokens").cache()
    subwords = None
    if corpus.method == "fasttext":
        from embedpipe.subwords import subword_index

        subwords = subword_index(keys, corpus.params["minn"], corpus.params["maxn"], corpus.params["buckets"])
    rows = []
    for replicas in args.replicas:
        parts = split_like_the_job(spark, sentences, replicas)
        for scheme in (["single"] if replicas == 1 else args.schemes):
            for seed in args.seeds:
                started = time.perf_counter()
                run = simulate(parts, keys, counts, {**corpus.params, "seed": seed}, scheme, subwords)
                scores = corpus.scorer(run)
                rows.append({"corpus": corpus.name, "replicas": replicas, "scheme": scheme, "seed": seed,
                             "scores": scores, "losses": run.losses, "norm": run.norm, "touched": run.touched,
                             "vocab": len(keys), "tokens": int(counts.sum()), "seconds": time.perf_counter() - started})
                log.info("%s", json.dumps({k: v for k, v in rows[-1].items() if k != "touched"}))
                _save(args, rows)
    for replicas in args.jobs:
        rows.append(job_run(corpus, replicas, args))
        _save(args, rows)
    sentences.unpersist()
    return rows


def job_run(corpus: Corpus, replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    """The real job at ``replicas`` processes (gloo), first seed, scored like the simulation."""
    from embedpipe.table import read_embedding_table

    output = args.workdir / f"{corpus.name}-job-{replicas}"
    dim = corpus.params["dim"]
    started = time.perf_counter()
    outputs = [] if corpus.method == "fasttext" else ["--set", f"{corpus.method}.export_output_vectors={output}-output"]
    _cli(["train", "--input", str(corpus.path), "--output", str(output), "--method", corpus.method, "--dim", str(dim),
          "--device", "cpu", "--processes", str(replicas), "--seed", str(args.seeds[0]), "--set", "threads=1",
          *outputs])
    vectors = np.asarray(read_embedding_table(str(output)).vectors)  # in id order, as the simulation's
    out = np.asarray(read_embedding_table(f"{output}-output").vectors) if outputs else None
    run = Run(vectors, out, [], [], float(np.linalg.norm(vectors, axis=1).mean()))  # type: ignore[arg-type]
    return {"corpus": corpus.name, "replicas": replicas, "scheme": "job (gloo)", "seed": args.seeds[0],
            "scores": corpus.scorer(run), "losses": [], "norm": run.norm, "touched": [],
            "seconds": time.perf_counter() - started}


def _save(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    (args.workdir / "bench_replicas.json").write_text(json.dumps(rows))


def render(rows: list[dict[str, Any]]) -> str:
    """Per corpus, replicas and scheme: each score's mean ± half-range over seeds, norm, loss per epoch."""
    out = []
    for name in dict.fromkeys(r["corpus"] for r in rows):
        group = [r for r in rows if r["corpus"] == name]
        metrics = list(group[0]["scores"])
        header = "| replicas | scheme | seeds | " + " | ".join(metrics) + " | mean norm | loss by epoch |"
        out += [f"\n{name}\n", header, "|---" * (5 + len(metrics)) + "|"]
        for key in dict.fromkeys((r["replicas"], r["scheme"]) for r in group):
            runs = [r for r in group if (r["replicas"], r["scheme"]) == key]
            cells = []
            for m in metrics:
                values = np.array([r["scores"][m] for r in runs], dtype=float)
                cells.append(f"{values.mean():.3f} ± {(values.max() - values.min()) / 2:.3f}")
            losses = np.mean([r["losses"] for r in runs if r["losses"]], axis=0) if runs[0]["losses"] else []
            curve = " ".join(f"{v:.3f}" for v in losses)
            norm = np.mean([r["norm"] for r in runs])
            out.append(f"| {key[0]} | {key[1]} | {len(runs)} | " + " | ".join(cells) + f" | {norm:.2f} | {curve} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="text8,demo,movielens")
    parser.add_argument("--replicas", default="1,2,4,8,16")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--schemes", default="sgns_sync,sum_updates,touched_mean,saturation")
    parser.add_argument("--text8-tokens", type=int, default=2_139_748)
    parser.add_argument("--demo-documents", type=int, default=100_000)
    parser.add_argument("--jobs", default="", help="replica counts to also run as the real job (first seed)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("embedpipe", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.replicas = [int(v) for v in args.replicas.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.schemes = args.schemes.split(",")
    args.jobs = [int(v) for v in args.jobs.split(",") if v]
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    spark = spark_session(max([2, *args.jobs]))
    rows: list[dict[str, Any]] = []
    for name in args.corpora.split(","):
        rows += bench(spark, prepare(spark, name, args.workdir / name, args), args)
        _save(args, rows)
    table = render(rows)
    (args.workdir / "bench_replicas.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
