"""Subword vectors on Korean and English: gensim Word2Vec / FastText vs embedpipe sgns / fasttext, side by side.

    python tests/benchmarks/bench_subword.py --corpus korean [--words 2500000] [--epochs 5] [--variants ...]
    python tests/benchmarks/bench_subword.py --corpus text8 [--words 2139748]
    python tests/benchmarks/bench_subword.py --corpus korean --words 1000000 --tokenizer kiwi \
        --runs fasttext gensim-ft-eptok        # embedpipe / gensim on Kiwi morphemes (the 'korean' extra)
    python tests/benchmarks/bench_subword.py --corpus korean --words 300000 --runs fasttext fasttext-jamo \
        --jamo-ngrams 2-8                      # the jamo experiment: syllable vs jamo n-grams

Data (``../shared/data``, see their READMEs; a clear error when missing): ``korean-dev`` (corpus.txt.gz,
kor2vec analogies 1,260 questions, kor_ws353 323 pairs) and ``text8-prefix`` (WordSim-353, SimLex-999 and
Google analogies from gensim's test data). ``--words`` cuts the corpus to a prefix of that many
whitespace tokens (say so when reporting).

Runs (the same dim 100, window 5, negative 5, sample 1e-3, min_count 5, epochs and n-gram range for all):
gensim Word2Vec and FastText on whitespace tokens (``str.split()``, the issue's baseline) and on
embedpipe's tokens (the tokenize job's output, punctuation split off); embedpipe sgns and fasttext through
``embedpipe.cli.main`` (tokenize, then train), fasttext with each ``minn-maxn`` of ``--ngrams``.

Scoring, the same code for every model: analogies by 3CosAdd over the model's vocabulary, **every
question counted** (a question whose a, b or c has no vector, or whose answer is not in the vocabulary,
is wrong); a subword model composes a, b, c from n-grams when they are unseen (embedpipe through
``EmbeddingTable.vectors_of(oov="subwords")``, gensim through ``model.wv[word]``; evaluation words stay
whole eojeol whatever the tokenizer, so a model trained on morphemes must compose them). Similarity: Spearman
over the pairs both of whose words have a vector, and that coverage. Words/s = the corpus's whitespace
words x epochs / training seconds, the same numerator for every run (so two rows' words/s compare as
their seconds do, whatever tokens each trained on); training seconds: gensim's ``train``,
embedpipe's job barrier stage (task start and encoding included). Measured in the same process one after
the other; ``uptime`` load printed with them.

``--tokenizer kiwi`` makes the tokens of the sgns / fasttext / gensim-ft-eptok runs with the tokenize job's
``tokenizer = "kiwi"`` (``--keep-particles`` keeps the josa). ``fasttext-jamo`` is an experiment kept
here, not a product option: the corpus and the evaluation words are decomposed into Hangul jamo
(Unicode NFD) before tokenizing, so n-grams (``--jamo-ngrams``) run over jamo instead of syllables.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def read_lines(corpus: str, words: int | None, data: Path = DATA) -> list[str]:
    path = data / ("korean-dev/corpus.txt.gz" if corpus == "korean" else "text8-prefix/text8-prefix.txt.gz")
    if not path.exists():
        sys.exit(f"bench_subword: {path} is missing (see ../shared/data/*/README.md)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if corpus == "text8":  # one line: cut into 1,000-token "sentences" as gensim's Text8Corpus does
        tokens = text.split()[:words] if words else text.split()
        return [" ".join(tokens[i:i + 1000]) for i in range(0, len(tokens), 1000)]
    lines, total = [], 0
    for line in text.splitlines():
        n = len(line.split())
        if words and total + n > words:
            break
        lines.append(line)
        total += n
    return lines


def eval_sets(corpus: str, data: Path = DATA):
    from embedpipe.evaluate.datasets import gensim_test_data_dir, parse_analogy_text, parse_similarity_text

    if corpus == "korean":
        base = data / "korean-dev"
        sims = {"WS353-ko": parse_similarity_text((base / "kor_ws353_kor2vec.tsv").read_text(), name="ws353-ko",
                                                  location="korean-dev")}
        analogies = parse_analogy_text((base / "kor2vec_questions-words.txt").read_text(), name="kor2vec",
                                       location="korean-dev")
    else:
        base = gensim_test_data_dir()
        sims = {name: parse_similarity_text((base / f).read_text(), name=name, location=str(base))
                for name, f in (("WS353", "wordsim353.tsv"), ("SimLex", "simlex999.txt"))}
        analogies = parse_analogy_text((base / "questions-words.txt").read_text(), name="google",
                                       location=str(base))
    return sims, analogies


def _pairs(dataset) -> list[tuple[str, str, float]]:
    return [(a, b, float(s)) for (a, b), s in zip(dataset.pairs, dataset.scores, strict=True)]


def _questions(dataset) -> list[tuple[str, str, str, str]]:
    return dataset.questions


def jamo(text: str) -> str:
    """Hangul syllables decomposed into their jamo (NFD); other characters unchanged."""
    return unicodedata.normalize("NFD", text)


def score(keys: list[str], vectors: np.ndarray, lookup, sims, analogies, lowercase: bool,
          fold=None) -> dict:
    """``lookup(words) -> (vectors, mask)``; keys/vectors are the candidate vocabulary."""
    fold = fold or (str.lower if lowercase else (lambda w: w))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {k: i for i, k in enumerate(keys)}
    out = {}
    for name, data in sims.items():
        pairs = [(fold(a), fold(b), s) for a, b, s in _pairs(data)]
        words = sorted({w for a, b, _ in pairs for w in (a, b)})
        vecs, ok = lookup(words)
        at = {w: i for i, w in enumerate(words)}
        got, gold = [], []
        for a, b, s in pairs:
            if ok[at[a]] and ok[at[b]]:
                va, vb = vecs[at[a]], vecs[at[b]]
                got.append(float(va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-12)))
                gold.append(s)
        out[name] = (float(spearmanr(got, gold)[0]) if len(got) > 2 else float("nan"), len(got), len(pairs))
    questions = [tuple(fold(w) for w in q) for q in _questions(analogies)]
    words = sorted({w for q in questions for w in q[:3]})
    vecs, ok = lookup(words)
    at = {w: i for i, w in enumerate(words)}
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    correct = 0
    answerable = [q for q in questions if all(ok[at[w]] for w in q[:3]) and q[3] in row]
    for start in range(0, len(answerable), 512):
        block = answerable[start:start + 512]
        target = np.stack([vecs[at[b]] - vecs[at[a]] + vecs[at[c]] for a, b, c, _ in block])
        scores = target @ unit.T
        for i, (a, b, c, _) in enumerate(block):
            for w in (a, b, c):
                if w in row:
                    scores[i, row[w]] = -np.inf
        best = scores.argmax(axis=1)
        correct += sum(keys[int(j)] == q[3] for j, q in zip(best, block, strict=True))
    out["analogies"] = (correct / len(questions), len(answerable), len(questions))
    return out


def gensim_run(kind: str, sentences: list[list[str]], args, minn: int, maxn: int) -> tuple[dict, object]:
    from gensim.models import FastText, Word2Vec

    common = dict(vector_size=args.dim, window=5, negative=5, sample=1e-3, min_count=args.min_count, sg=1,
                  workers=args.threads, seed=1)
    model = FastText(min_n=minn, max_n=maxn, bucket=2_000_000, **common) if kind == "fasttext" else Word2Vec(**common)
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
    seconds = time.perf_counter() - started
    return {"words_per_second": args.corpus_words * args.epochs / seconds, "seconds": seconds}, model.wv


def gensim_lookup(wv, subword: bool):
    def lookup(words):
        ok = np.array([subword or w in wv.key_to_index for w in words])
        vecs = np.stack([wv[w] if o else np.zeros(wv.vector_size, np.float32) for w, o in zip(words, ok, strict=True)])
        if subword:  # a word with no n-gram in any bucket gets zeros in gensim: count it as missing
            ok = ok & (np.abs(vecs).sum(axis=1) > 0)
        return vecs, ok
    return lookup


def table_lookup(table, subword: bool):
    def lookup(words):
        if subword:
            vecs = table.vectors_of(words, oov="subwords")
            return vecs, np.abs(vecs).sum(axis=1) > 0
        rows = table.rows(words)
        return table.vectors_of(words, oov="zero"), rows >= 0
    return lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=("korean", "text8"), default="korean")
    parser.add_argument("--words", type=int, default=None, help="cut the corpus to this many whitespace tokens")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ngrams", nargs="+", default=["1-4"], help="minn-maxn ranges of embedpipe fasttext")
    parser.add_argument("--gensim-ngrams", nargs="+", default=None, help="minn-maxn ranges of gensim FastText "
                        "(default: --ngrams)")
    parser.add_argument("--runs", nargs="+", default=["gensim-w2v", "gensim-ft", "gensim-ft-eptok", "sgns",
                                                      "fasttext"], help="what to run, in this order")
    parser.add_argument("--buckets", type=int, default=2_000_000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--reuse-tokens", action="store_true", help="keep <workdir>/tokens from an earlier run")
    parser.add_argument("--tokenizer", choices=("regex", "kiwi"), default="regex",
                        help="the tokenize job's tokenizer for the embedpipe-token runs")
    parser.add_argument("--keep-particles", action="store_true", help="kiwi: keep the particles (josa)")
    parser.add_argument("--jamo-ngrams", default="2-8", help="minn-maxn of fasttext-jamo (over jamo)")
    args = parser.parse_args()

    from embedpipe.cli import main as cli
    from embedpipe.table import read_embedding_table

    sims, analogies = eval_sets(args.corpus)
    lines = read_lines(args.corpus, args.words)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_subword-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    n_words = args.corpus_words = sum(len(line.split()) for line in lines)
    print(f"corpus {args.corpus}: {len(lines)} lines, {n_words} whitespace tokens; epochs {args.epochs}; "
          f"load {load_avg()}", flush=True)
    lowercase = args.corpus == "text8"
    results = []

    def report(name: str, speed: dict, quality: dict) -> None:
        row = {"run": name, **{k: round(v, 1) for k, v in speed.items()}, **quality}
        results.append(row)
        cells = [f"{k} {v[0]:.3f} ({v[1]}/{v[2]})" for k, v in quality.items()]
        print(f"{name:32s} {speed.get('words_per_second', 0):>10.0f} words/s {speed.get('seconds', 0):6.1f} s  "
              + "  ".join(cells)
              + f"  [load {load_avg()}]", flush=True)

    tokens = work / "tokens"
    needs_tokens = any(r in args.runs for r in ("sgns", "fasttext", "gensim-ft-eptok"))
    tokenizer = ["--tokenizer", args.tokenizer] + (["--set", "keep_particles=true"] if args.keep_particles else [])
    label = "" if args.tokenizer == "regex" else f", {args.tokenizer}" + (" +josa" if args.keep_particles else "")
    if needs_tokens and not (args.reuse_tokens and (tokens / "report.json").exists()):
        started = time.perf_counter()
        assert cli(["tokenize", "--input", str(work / "corpus.txt"), "--output", str(tokens), "--min-count",
                    str(args.min_count), *tokenizer, "--log-level", "WARNING"]) == 0
        print(f"tokenize ({args.tokenizer}): {time.perf_counter() - started:.1f} s, "
              f"{n_words / (time.perf_counter() - started):.0f} eojeol/s  [load {load_avg()}]", flush=True)
    ranges = [tuple(int(x) for x in r.split("-")) for r in args.ngrams]
    gensim_ranges = [tuple(int(x) for x in r.split("-")) for r in (args.gensim_ngrams or args.ngrams)]
    whitespace = [line.split() for line in lines]
    train = ["train", "--input", str(tokens), "--dim", str(args.dim), "--threads", str(args.threads), "--device",
             "cpu", "--log-level", "WARNING"]

    def gensim_w2v() -> None:
        speed, wv = gensim_run("w2v", whitespace, args, 0, 0)
        report("gensim Word2Vec (split)", speed, score(list(wv.index_to_key), wv.vectors, gensim_lookup(wv, False),
                                                       sims, analogies, lowercase))

    def gensim_ft(sentences, what: str) -> None:
        for minn, maxn in gensim_ranges:
            speed, wv = gensim_run("fasttext", sentences, args, minn, maxn)
            report(f"gensim FastText {minn}-{maxn} ({what})", speed,
                   score(list(wv.index_to_key), wv.vectors, gensim_lookup(wv, True), sims, analogies,
                         lowercase))

    def embedpipe_tokens() -> list[list[str]]:
        import pyarrow.parquet as pq

        docs = pq.read_table(str(tokens / "tokens"), columns=["tokens"]).column("tokens").to_pylist()
        return [d for d in docs if d]

    def sgns() -> None:
        out = work / "sgns"
        assert cli([*train, "--output", str(out), "--method", "sgns", "--set", f"sgns.epochs={args.epochs}"]) == 0
        table = read_embedding_table(str(out))
        report(f"embedpipe sgns{label}", _speed(args),
               score(table.keys, table.vectors, table_lookup(table, False), sims, analogies, lowercase))

    def fasttext() -> None:
        for minn, maxn in ranges:
            out = work / f"fasttext-{minn}-{maxn}"
            assert cli([*train, "--output", str(out), "--method", "fasttext", "--set",
                        f"fasttext.epochs={args.epochs}", "--set", f"fasttext.minn={minn}", "--set",
                        f"fasttext.maxn={maxn}", "--set", f"fasttext.buckets={args.buckets}"]) == 0
            table = read_embedding_table(str(out))
            report(f"embedpipe fasttext {minn}-{maxn}{label}", _speed(args),
                   score(table.keys, table.vectors, table_lookup(table, True), sims, analogies, lowercase))

    def fasttext_jamo() -> None:
        """The experiment: the same run on jamo-decomposed text, evaluation words decomposed alike."""
        minn, maxn = (int(x) for x in args.jamo_ngrams.split("-"))
        (work / "corpus-jamo.txt").write_text("\n".join(jamo(line) for line in lines) + "\n", encoding="utf-8")
        jamo_tokens, out = work / "tokens-jamo", work / f"fasttext-jamo-{minn}-{maxn}"
        assert cli(["tokenize", "--input", str(work / "corpus-jamo.txt"), "--output", str(jamo_tokens),
                    "--min-count", str(args.min_count), "--log-level", "WARNING"]) == 0
        assert cli([*train[:2], str(jamo_tokens), *train[3:], "--output", str(out), "--method", "fasttext",
                    "--set", f"fasttext.epochs={args.epochs}", "--set", f"fasttext.minn={minn}", "--set",
                    f"fasttext.maxn={maxn}", "--set", f"fasttext.buckets={args.buckets}"]) == 0
        table = read_embedding_table(str(out))
        fold = (lambda w: jamo(w.lower())) if lowercase else jamo
        report(f"embedpipe fasttext jamo {minn}-{maxn}", _speed(args),
               score(table.keys, table.vectors, table_lookup(table, True), sims, analogies, lowercase, fold))

    runs = {
        "gensim-w2v": gensim_w2v,
        "gensim-ft": lambda: gensim_ft(whitespace, "split"),
        "gensim-ft-eptok": lambda: gensim_ft(embedpipe_tokens(), "ep tokens"),
        "sgns": sgns,
        "fasttext": fasttext,
        "fasttext-jamo": fasttext_jamo,
    }
    for name in args.runs:  # in the order given
        runs[name]()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {work / 'results.json'}")


_LAST_FIT: dict = {}


def _speed(args) -> dict:
    """Corpus words/s of the latest train job, from its summary's fit seconds (the barrier stage)."""
    fit = _LAST_FIT.pop("fit", None)
    if fit is None:
        return {}
    return {"words_per_second": args.corpus_words * args.epochs / fit["fit_seconds"], "seconds": fit["fit_seconds"]}


def _capture_summaries() -> None:
    """Keep the latest train summary (the pipeline logs it) so words/s comes from the job itself."""
    import embedpipe.methods.pipeline as pipeline

    original = pipeline.run_train

    def run_train(spark, config):
        summary = original(spark, config)
        _LAST_FIT["fit"] = summary
        return summary

    pipeline.run_train = run_train


if __name__ == "__main__":
    _capture_summaries()
    main()
