"""The settings of every job, declared once (help, defaults, constraints).

A config file groups keys under one section per job (``[tokenize]``, ``[train]``, ...) plus a
``[spark]`` section shared by all jobs; ``[train]`` has one sub-table per training method
(``[train.sgns]``, ...; declared in :mod:`embedpipe.methods.settings`). See ``conf/`` for examples
and ``docs/configuration.md`` for the reference.

In Python a job's config is its dataclass; for ``train`` the chosen method's settings go in
``settings``, as the method's settings class or a dict of its keys::

    TrainConfig(input="out/tokens", output="out/table", method="sgns", dim=50, seed=7,
                settings=SGNSSettings(epochs=10))   # or settings={"epochs": 10}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedpipe.config import DEFAULT_SEED, build_config, option, resolve_config
from embedpipe.errors import ConfigError
from embedpipe.interop.formats import EXPORT_FORMATS, IMPORT_FORMATS
from embedpipe.methods.settings import (
    METHOD_SETTINGS,
    PATH_SETTINGS,
    RUNTIME_KEYS,
    TRAIN_METHODS,
    build_method_settings,
    old_key_error,
    setting_names,
    settings_to_dict,
)

INPUT_FORMATS = ("auto", "text", "parquet", "json", "csv")
LOG_FORMATS = ("auto", "csv", "parquet", "json", "udata")


@dataclass(frozen=True)
class SparkSettings:
    """Where and how the SparkSession runs (ignored parts are set by spark-submit)."""

    master: str | None = option(None, "Spark master URL when not launched by spark-submit, e.g. local[4]")
    app_name: str | None = option(None, "Spark application name (default: embedpipe-<job>)")
    driver_memory: str | None = option(None, "spark.driver.memory for local runs, e.g. 4g")
    shuffle_partitions: int | None = option(
        None, "spark.sql.shuffle.partitions (default: 4 per core in local mode, the cluster's own under spark-submit); "
        "raise it when shuffle tasks spill to disk", min=1,
    )
    log_level: str = option("WARN", "Spark log level", choices=("ERROR", "WARN", "INFO", "DEBUG"))
    conf: dict[str, str] = option({}, "extra Spark settings, e.g. conf.\"spark.executor.memory\" = \"8g\"")


@dataclass(frozen=True)
class TokenizerSettings:
    """How text becomes tokens; recorded in every table's manifest so lookups tokenize the same way."""

    lowercase: bool = option(True, "lowercase tokens (Unicode-aware)")
    min_token_length: int = option(1, "drop tokens shorter than this many characters", min=1)
    max_token_length: int = option(100, "drop tokens longer than this many characters", min=1)
    stop_words: str = option("", "stop words to drop: empty for none, 'english', or a path to a file (one per line)")
    keep_numbers: bool = option(True, "keep tokens made only of digits")
    tokenizer: str = option(
        "regex", "regex: runs of letters and digits (any language written with spaces); kiwi: Korean eojeol split "
        "into morphemes by the Kiwi analyser (the 'korean' extra; docs/methods/fasttext.md)", choices=("regex", "kiwi"),
    )
    keep_particles: bool = option(
        False, "kiwi: keep Korean particles (josa: 이/가, 을/를, 은/는, 의...) as tokens; they are the most frequent "
        "morphemes and say little about their noun, so they go by default; keep them when the vectors should "
        "reflect grammatical role",
    )


@dataclass(frozen=True)
class TokenizeConfig(TokenizerSettings):
    """``embedpipe tokenize``: text corpus -> tokens, vocabulary, bag-of-words vectors."""

    input: str = option(help="text file or directory (one document per line), Parquet, JSON lines or CSV")
    output: str = option(help="output directory (tokens/, vocab/, bow/, report.json); replaced atomically")
    format: str = option("auto", "input format (auto: by file extension)", choices=INPUT_FORMATS)
    text_column: str = option("text", "column holding the text (tabular inputs)")
    id_column: str | None = option(None, "column holding the document id (default: line number / row order)")
    one_hot_column: str | None = option(None, "also write one-hot vectors of this categorical column (onehot/)")
    label_column: str | None = option(
        None, "numeric column carried into bow/ as 'label' (e.g. a price, for train --method regression); rows "
        "whose label is missing or not a finite number are counted in report.json and left out of bow/"
    )
    csv_header: bool = option(True, "CSV files have a header row")
    csv_delimiter: str = option(",", "CSV field delimiter")
    min_count: int = option(5, "keep tokens seen at least this many times", min=1)
    max_vocab_size: int | None = option(None, "keep at most this many tokens (most frequent first)", min=1)
    max_document_chars: int = option(1_000_000, "documents longer than this are truncated and counted", min=1)

    def tokenizer_settings(self) -> TokenizerSettings:
        return TokenizerSettings(
            lowercase=self.lowercase,
            min_token_length=self.min_token_length,
            max_token_length=self.max_token_length,
            stop_words=self.stop_words,
            keep_numbers=self.keep_numbers,
            tokenizer=self.tokenizer,
            keep_particles=self.keep_particles,
        )

    def validate(self) -> None:
        if self.max_token_length < self.min_token_length:
            raise ConfigError("config key 'max_token_length' must be >= min_token_length")
        if self.keep_particles and self.tokenizer != "kiwi":
            raise ConfigError("config key 'keep_particles' needs tokenizer = kiwi (the regex tokenizer keeps "
                              "particles attached to their word)")
        if self.tokenizer == "kiwi":
            from embedpipe.text.kiwi import require_kiwi

            require_kiwi()


@dataclass(frozen=True)
class HistoriesConfig:
    """``embedpipe histories``: interaction log -> per-user item sequences, item vocabulary, user vectors."""

    input: str = option(help="interaction log: CSV, Parquet, JSON lines or MovieLens u.data (tab separated)")
    output: str = option(help="output directory (sequences/, vocab/, vectors/, heldout/ with a holdout, report.json); "
                              "replaced atomically")
    format: str = option("auto", "input format (auto: by file name/extension)", choices=LOG_FORMATS)
    user_column: str = option("user", "user id column")
    item_column: str = option("item", "item id column")
    time_column: str | None = option(None, "timestamp column that orders each user's history")
    weight_column: str | None = option(None, "weight/rating column (default: every interaction counts 1)")
    rating_threshold: float | None = option(None, "keep interactions whose weight is >= this (explicit -> implicit)")
    csv_header: bool = option(True, "CSV files have a header row")
    csv_delimiter: str = option(",", "CSV field delimiter")
    min_count: int = option(1, "keep items with at least this many interactions", min=1)
    max_vocab_size: int | None = option(None, "keep at most this many items (most frequent first)", min=1)
    holdout: str = option(
        "none", "hold items out of training for recommendation evaluation (heldout/): none, random (seeded, per "
        "user) or last (the items each user met last; needs time_column)", choices=("none", "random", "last"),
    )
    holdout_items: int = option(1, "holdout: distinct items held out per user", min=1)
    holdout_fraction: float | None = option(
        None, "holdout: instead of holdout_items, this share of each user's distinct items (rounded; 0.2 with "
        "holdout = last is the recommendation protocol of docs/recommendation-protocol.md)", min=0, min_exclusive=True,
    )
    holdout_min_train_items: int = option(
        1, "holdout: a user is split only if at least this many distinct items stay in training", min=1
    )
    holdout_seed: int = option(42, "holdout = random: seed of the per-user item choice", min=0)

    def validate(self) -> None:
        if self.rating_threshold is not None and self.weight_column is None:
            raise ConfigError("config key 'rating_threshold' needs weight_column (the rating column to compare)")
        if self.holdout == "last" and self.time_column is None:
            raise ConfigError("config key 'holdout' = last needs time_column (the column that orders the history)")
        if self.holdout_fraction is not None:
            if self.holdout_fraction >= 1:
                raise ConfigError(f"config key 'holdout_fraction' must be < 1, got {self.holdout_fraction!r}")
            if self.holdout == "none":
                raise ConfigError("config key 'holdout_fraction' needs holdout = random or last")
            if self.holdout_items != 1:
                raise ConfigError("config keys 'holdout_items' and 'holdout_fraction' exclude each other: set one")


def _users(key: str) -> str:
    """The methods that read runtime key ``key``, for its help text (from RUNTIME_KEYS, so it cannot drift)."""
    return ", ".join(RUNTIME_KEYS[key])


@dataclass(frozen=True)
class TrainConfig:
    """``embedpipe train``: tokenize or histories output -> embedding table (and, for pca, document vectors).

    The keys every method shares are fields here; each method's own keys are its settings class in
    :mod:`embedpipe.methods.settings` (``[train.sgns]`` in a file, ``--set sgns.window=8`` on the
    command line; in Python ``settings=``, as that class or a dict of its keys, None for the method's
    defaults). ``config.settings`` is then always the chosen method's settings object. A setting the
    method does not read is refused, naming the key and the method.
    """

    input: str = option(
        help="a tokenize output (tokens/, vocab/, bow/) or histories output (sequences/, vocab/, vectors/)"
    )
    output: str = option(help="embedding table directory; replaced atomically")
    method: str = option("word2vec", "training method; its settings are the [train.<method>] section",
                         choices=TRAIN_METHODS)
    dim: int = option(100, "embedding dimension (als: the rank; popularity: always 1)", min=1)
    seed: int = option(DEFAULT_SEED, "random seed: the same seed, input and settings give the same table", min=0)
    device: str = option(
        "auto", f"{_users('device')}: where each replica trains: auto (the GPU Spark assigned, else "
        "cuda if visible, else cpu), cpu or cuda; set cpu to keep a GPU free", choices=("auto", "cpu", "cuda"),
    )
    processes: int = option(
        1, f"{_users('processes')}: model replicas, one Spark barrier task each (data parallel); raise "
        "it to use several executors or GPUs (on small data replicas trail one process)", min=1,
    )
    averages_per_epoch: int = option(
        10, f"{_users('averages_per_epoch')}: how often per epoch the replicas combine their models; only "
        "matters with processes > 1", min=1,
    )
    threads: int | None = option(
        None, f"{_users('threads')}: CPU threads per replica (default: the cores a task may use); "
        "set it when the default over- or under-subscribes the machine", min=1,
    )
    checkpoint_dir: str | None = option(
        None, f"{_users('checkpoint_dir')}: save each replica's training state after every epoch to "
        "<dir>/replica-<r>/ (a local or shared directory every replica can reach); set it for runs too long to repeat",
    )
    resume: bool = option(
        False, f"{_users('resume')}: continue from the last completed epoch saved in checkpoint_dir (same settings)"
    )
    init_from: str | None = option(
        None, f"{_users('init_from')}: warm start: keys of this earlier table start from its vectors "
        "(new keys start fresh, vanished keys are dropped), so retraining keeps the space; set it for daily "
        "retraining (docs/warm-start.md)",
        metavar="TABLE",
    )
    init_from_missing: str = option(
        "fail", f"{_users('init_from_missing')}: what a missing init_from table means: fail, or cold (a logged "
        "cold start; the nightly DAG's first run, before anything is published)", choices=("fail", "cold"),
    )
    settings: Any = option(None, "the chosen method's settings ([train.<method>])", nested=True)

    def __post_init__(self) -> None:
        if self.method not in METHOD_SETTINGS:
            raise ConfigError(f"config key 'method' must be one of {', '.join(TRAIN_METHODS)}, got {self.method!r}")
        expected = METHOD_SETTINGS[self.method]
        given = self.settings
        if given is None:
            values: dict[str, Any] = {}
        elif isinstance(given, Mapping):
            values = dict(given)
        elif isinstance(given, expected):
            values = settings_to_dict(given)
        else:
            raise ConfigError(
                f"the settings of method {self.method} must be {expected.__name__} or a dict of its keys, "
                f"got {type(given).__name__}"
            )
        # rebuilt through the declaration: a hand-made settings object is checked like a config file
        object.__setattr__(self, "settings", build_method_settings(self.method, values))
        self.validate()

    @classmethod
    def from_sources(
        cls, *, file_section: dict[str, Any] | None, overrides: dict[str, str], flags: dict[str, Any]
    ) -> TrainConfig:
        """Merge a ``[train]`` section (with its ``[train.<method>]`` tables) < ``--set`` < flags, and check it.

        Keys of the old flat layout are refused with their new name; only the chosen method's table
        is read (a shared file may hold other methods' tables); ``--set other.key`` is refused.
        """
        section = dict(file_section or {})
        tables = {name: section.pop(name) for name in list(section) if name in METHOD_SETTINGS}
        method = flags.get("method", overrides.get("method", section.get("method", "word2vec")))
        if method not in METHOD_SETTINGS:
            raise ConfigError(f"config key 'method' must be one of {', '.join(TRAIN_METHODS)}, got {method!r}")
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise ConfigError(f"config key '{name}' must be a [train.{name}] section of {name}'s settings")
        method_overrides: dict[str, str] = {}
        flat_overrides: dict[str, str] = {}
        for key, value in overrides.items():
            head, dot, tail = key.partition(".")
            if dot and head == method:
                method_overrides[tail] = value
            elif dot and head in METHOD_SETTINGS:
                raise ConfigError(f"config key '{key}' is a setting of method {head}, but the method is {method}")
            else:
                flat_overrides[key] = value
        common = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("nested")}
        given = {**section, **flat_overrides, **flags}
        for key in given:
            if key not in common:
                error = old_key_error(key, method)
                if error is not None:
                    raise error
                raise ConfigError(
                    f"unknown config key '{key}' (known keys: {', '.join(sorted(common))}; a method's own keys go "
                    f"in [train.{method}] or --set {method}.<key>)"
                )
            if key in RUNTIME_KEYS and method not in RUNTIME_KEYS[key]:
                raise runtime_key_error(key, method)
        settings = build_method_settings(method, {**tables.get(method, {}), **method_overrides},
                                         from_text_keys=frozenset(method_overrides))
        return build_config(cls, {**given, "settings": settings},
                            from_text_keys=frozenset(flat_overrides) | frozenset(flags))

    def validate(self) -> None:
        for key, methods in RUNTIME_KEYS.items():
            if self.method not in methods and getattr(self, key) != _TRAIN_DEFAULTS[key]:
                raise runtime_key_error(key, self.method)
        if self.resume and self.checkpoint_dir is None:
            raise ConfigError("config key 'resume' needs checkpoint_dir (where the checkpoints are)")
        if self.init_from == "":  # what the nightly DAG renders for a forced cold start
            object.__setattr__(self, "init_from", None)
        if self.init_from is not None and self.output is not None and (
                self.init_from.rstrip("/") == self.output.rstrip("/")):
            raise ConfigError("config key 'init_from' must differ from 'output' (the parent table would be replaced)")
        for key in PATH_SETTINGS:
            target = getattr(self.settings, key, None)
            if target is not None and self.output is not None and target.rstrip("/") == self.output.rstrip("/"):
                raise ConfigError(f"config key '{self.method}.{key}' must differ from 'output'")

    @staticmethod
    def help_epilog() -> str:
        """``train --help``: each method's own keys, set with ``--set <method>.<key>=value``."""
        lines = ["method settings (--set <method>.<key>=VALUE, or a [train.<method>] table; docs/configuration.md):"]
        for method in TRAIN_METHODS:
            names = setting_names(method)
            lines.append(f"  {method}: {', '.join(names) if names else '(none)'}")
        return "\n".join(lines)

    def runtime_keys(self) -> dict[str, Any]:
        """The PyTorch-runtime keys the chosen method reads, with their values."""
        return {key: getattr(self, key) for key, methods in RUNTIME_KEYS.items() if self.method in methods}

    def to_dict(self) -> dict[str, Any]:
        """What the train log records: the common keys, the runtime keys the method reads, its own settings."""
        return {
            "input": self.input, "output": self.output, "method": self.method, "dim": self.dim, "seed": self.seed,
            **self.runtime_keys(),
            self.method: settings_to_dict(self.settings),
        }

    def recorded_params(self) -> dict[str, Any]:
        """The training parameters a table's manifest records: ``dim``, ``seed``, the runtime keys the
        method reads and its own settings; no paths (the manifest records its source and inputs)."""
        runtime = {k: v for k, v in self.runtime_keys().items()
                   if k not in ("checkpoint_dir", "resume", "init_from", "init_from_missing")}
        own = {k: v for k, v in settings_to_dict(self.settings).items() if k not in PATH_SETTINGS}
        return {"dim": self.dim, "seed": self.seed, **runtime, **own}


_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def runtime_key_error(key: str, method: str) -> ConfigError:
    """The error for a PyTorch-runtime key set for a method that does not read it."""
    return ConfigError(f"config key '{key}' is not used by method {method} (only by {', '.join(RUNTIME_KEYS[key])})")


@dataclass(frozen=True)
class EvaluateConfig:
    """``embedpipe evaluate``: embedding table -> quality report (JSON, Markdown, PNG)."""

    table: str = option(help="embedding table directory to evaluate")
    output: str = option(help="report directory (report.json, report.md, projection.png); replaced atomically")
    similarity: list[str] = option(
        ["builtin"], "word-similarity files (WordSim-353/SimLex-999 format); 'builtin' = gensim's copies"
    )
    analogies: list[str] = option(["builtin"], "analogy files (questions-words.txt format); 'builtin' = gensim's copy")
    restrict_vocab: int = option(
        30_000, "analogies: only the most frequent this many keys are candidates (and may appear in questions)", min=1
    )
    probes: list[str] = option([], "keys whose nearest neighbours are listed in the report")
    neighbors: int = option(10, "how many neighbours to list per probe", min=1)
    plot_keys: list[str] = option([], "keys drawn in the 2-D projection plot (default: probes and their neighbours)")
    plot_top: int = option(40, "keys drawn (most frequent first) when neither plot_keys nor probes are found", min=2)
    lowercase: bool = option(True, "lowercase evaluation words (and fold table keys' case) before lookup")
    oov: str = option("skip", "similarity and analogy words not in the table: leave their pairs/questions out, or "
                      "(subwords, a fasttext table) compose them from their character n-grams (answers are still "
                      "table keys)", choices=("skip", "subwords"))
    histories: str | None = option(
        None, "a histories output made with holdout: adds recommendation metrics (users scored from their training "
        "items, held-out items as the truth)"
    )
    compare: list[str] = option(
        [], "recommendation: more tables evaluated on the same histories, side by side in the report"
    )
    candidate_table: str | None = option(
        None, "recommendation: score items with this table's vectors (same keys and dim as 'table', e.g. a softmax's "
        "export_output_vectors) against users = mean of their training items in 'table' (two towers; auto = dot)"
    )
    score: str = option(
        "auto", "recommendation: how items are scored against a user's mean item vector (auto: dot for als and "
        "popularity tables, cosine otherwise)", choices=("auto", "cosine", "dot"),
    )
    k_values: list[int] = option([10, 20, 50], "recommendation: cut-offs K of Recall@K, NDCG@K, HR@K, coverage@K",
                                 min=1)
    block_rows: int = option(
        1024, "recommendation: users per matrix product (fewer when users x catalogue would pass 64 MiB)", min=1
    )
    item_metadata: str | None = option(
        None, "items CSV with item, audience and style columns (as the demo writes): colours the item projection"
    )

    def validate(self) -> None:
        if self.compare and self.histories is None:
            raise ConfigError("config key 'compare' needs histories (the split the tables are compared on)")
        if self.candidate_table is not None and self.histories is None:
            raise ConfigError("config key 'candidate_table' needs histories (it is only used to score recommendations)")


@dataclass(frozen=True)
class DemoConfig:
    """``embedpipe demo``: generate a planted corpus and watch log, then tokenize, train, evaluate and draw.

    The methods are fixed (words: sgns, movies: the best recommender on such a log; see
    :mod:`embedpipe.demo.pipeline`): the demo shows what the project does at its defaults.
    """

    output: str = option("out/demo", "directory for the demo's data, tables and reports")
    documents: int = option(20_000, "documents in the generated corpus (about 12 tokens each); more shows the "
                                     "structure more sharply and takes longer", min=10)
    users: int = option(2_000, "users in the generated watch log", min=10)
    seed: int = option(7, "generator and training seed", min=0)
    dim: int = option(50, "embedding dimension of both tables", min=2)


EMBED_FORMATS = ("auto", "parquet", "json", "csv", "text")


@dataclass(frozen=True)
class EmbedConfig:
    """``embedpipe embed``: a dataset + an embedding table -> the dataset with a vector per row."""

    table: str = option(help="embedding table directory to look keys up in")
    input: str = option(help="dataset to embed: Parquet, JSON lines, CSV or text (one document per line)")
    output: str = option(help="output Parquet directory (every input column + vector, tokens_found, "
                              "tokens_total); replaced atomically")
    format: str = option("auto", "input format (auto: by file extension)", choices=EMBED_FORMATS)
    column: str = option("tokens", "column to embed: array of tokens/items, raw text, or sparse indices")
    kind: str = option(
        "auto", "what the column holds (auto: array<string> = tokens, string = text, array<int> with "
        "values_column = sparse)", choices=("auto", "tokens", "text", "sparse"),
    )
    values_column: str | None = option(None, "sparse: the values column paired with the indices in 'column'")
    combiner: str = option(
        "mean", "how a row's vectors combine: mean (average over every occurrence), sum (S.E: every occurrence "
        "counts, sparse values weigh), sum_distinct (each distinct key once), tfidf (sum weighted by idf), sqrtn "
        "(S.E / ||s||_2); one of mean, sum, sum_distinct, tfidf, sqrtn",
    )
    idf: str = option("table", "tfidf: document frequencies from the table's counts or from the input",
                      choices=("table", "input"))
    normalize: bool = option(False, "L2-normalise every output vector")
    oov: str = option("skip", "tokens not in the table: skip them, count them as zero vectors, fail the job, or "
                      "(subwords, a fasttext table) compose them from their character n-grams",
                      choices=("skip", "zero", "fail", "subwords"))
    strategy: str = option(
        "auto", "broadcast the table to executors or shuffle-join it (auto: broadcast below broadcast_max_mb)",
        choices=("auto", "broadcast", "shuffle"),
    )
    broadcast_max_mb: int = option(
        512, "auto: largest table (vectors + keys, MiB) shipped to every executor Python worker", min=1
    )
    dim: int | None = option(None, "expected table dimension; the job fails if the table differs", min=1)
    vector_column: str = option("vector", "name of the output vector column")
    csv_header: bool = option(True, "CSV files have a header row")
    csv_delimiter: str = option(",", "CSV field delimiter")

    def validate(self) -> None:
        from embedpipe.combiners import check_combiner  # the kernels' list; a removed name says what replaced it

        check_combiner(self.combiner)
        if self.oov == "subwords" and self.combiner == "tfidf":
            raise ConfigError("config key 'oov' = subwords does not go with combiner tfidf (an unseen word has no "
                              "document frequency)")
        if self.values_column is not None and self.kind not in ("auto", "sparse"):
            raise ConfigError("config key 'values_column' needs kind = sparse (or auto)")


@dataclass(frozen=True)
class NeighborsConfig:
    """``embedpipe neighbors``: embedding table -> top-k cosine neighbours (and analogy answers)."""

    table: str = option(help="embedding table directory")
    output: str = option(help="output Parquet directory (key, neighbor, score, rank); replaced atomically")
    k: int = option(10, "neighbours per key", min=1)
    queries: list[str] = option([], "only these keys (default: every key of the table)")
    method: str = option(
        "exact", "exact: blocked matrix products against the broadcast table (N^2 dim flops); index: the table's "
        "Faiss index, built first with embedpipe index (use it when N^2 is out of reach, about 1M keys and up)",
        choices=("exact", "index"),
    )
    block_rows: int = option(4096, "query rows per Spark task slice (one matrix product or index search each); "
                                   "lower it if executors run short of memory", min=1)
    analogies: list[str] = option(
        [], "analogy queries 'a b c' (answers a - b + c, inputs excluded), e.g. 'king man woman'"
    )
    analogy_output: str | None = option(None, "also write the analogy answers here as Parquet (a, b, c, answer, "
                                              "score, rank)")
    oov: str = option("skip", "queries and analogy words not in the table: skip them (analogies fail), or (subwords, "
                      "a fasttext table) compose them from their character n-grams", choices=("skip", "subwords"))

    @classmethod
    def from_sources(
        cls, *, file_section: dict[str, Any] | None, overrides: dict[str, str], flags: dict[str, Any]
    ) -> NeighborsConfig:
        """Merge file < --set < flags; the retired LSH (``method = approximate``, its keys) is a one-line error."""
        given = {**(file_section or {}), **overrides, **flags}
        retired = [key for key in sorted(RETIRED_NEIGHBORS_KEYS) if key in given]
        if given.get("method") == "approximate" or retired:
            what = f"config key '{retired[0]}'" if retired else "method 'approximate'"
            raise ConfigError(f"{what}: the LSH search was removed; use --method index (build the index first with "
                              "embedpipe index --table T; see docs/decisions.md)")
        return resolve_config(cls, file_section=file_section, overrides=overrides, flags=flags)


#: Keys of the LSH search (``neighbors --method approximate``), retired for the Faiss index (issue 23).
RETIRED_NEIGHBORS_KEYS = frozenset({"lsh_bits", "lsh_tables", "lsh_max_bucket", "seed"})


# ---- publish (issue 5: quality gate + publication) ----
@dataclass(frozen=True)
class PublishConfig:
    """``embedpipe publish``: quality gate on a table's evaluate report, then an atomic copy to a stable path."""

    table: str = option(help="embedding table directory of this run (e.g. .../tables/words/run_date=2026-11-24)")
    report: str = option(help="the table's evaluate output directory (or its report.json)")
    output: str = option(
        help="stable published table directory (e.g. .../published/words); replaced atomically, only when "
        "every check passes"
    )
    run_date: str | None = option(None, "the run's date (YYYY-MM-DD), recorded in _published.json", metavar="DATE")
    report_output: str | None = option(
        None, "also write the gate's own report.json here (every check and the drift metrics, published or not), "
        "failed gate included; set it when monitoring reads the gate's figures (the nightly DAG sets one per date)",
    )
    min_rows: int = option(1, "fail the gate when the table has fewer rows", min=1)
    min_similarity_spearman: float | None = option(
        None, "fail when any similarity file's Spearman is below this (or was not measured)", min=-1.0, max=1.0
    )
    min_analogy_accuracy: float | None = option(
        None, "fail when any analogy file's accuracy is below this (or was not measured)", min=0.0, max=1.0
    )
    max_oov_rate: float | None = option(
        None, "fail when any evaluation file has a larger share of pairs/questions not covered by the table",
        min=0.0, max=1.0,
    )
    min_metrics: dict[str, str] = option(
        {}, "extra lower bounds by report.json path, e.g. \"similarity.wordsim353.spearman\" = 0.3 (list "
        "entries are picked by their name)"
    )
    max_metrics: dict[str, str] = option({}, "extra upper bounds by report.json path, like min_metrics")
    allow_older: bool = option(
        False, "publish even when the table now published has a later run_date (a backfill normally leaves it)"
    )
    drift_keys: int = option(
        10_000, "drift: the overlap and the residual are measured on this many most frequent keys the table shares "
        "with the published one (neighbours searched among them); lower it when the driver is short of time",
        min=2,
    )
    drift_k: int = option(10, "drift: neighbours per key of the overlap", min=1)
    min_neighbour_overlap: float | None = option(
        None, "drift: fail when the keys keep a smaller share of their drift_k nearest neighbours than this "
        "(warm-started runs keep ~0.8+, cold retrains far less: docs/warm-start.md)", min=0.0, max=1.0,
    )
    max_procrustes_residual: float | None = option(
        None, "drift: fail when the published vectors, best rotated onto the new ones, still differ by more than "
        "this (relative; about 1.4 for unrelated spaces)", min=0.0,
    )
    max_added_fraction: float | None = option(
        None, "drift: fail when a larger share of the table's keys is new (not in the published table)",
        min=0.0, max=1.0,
    )
    max_removed_fraction: float | None = option(
        None, "drift: fail when a larger share of the published table's keys is gone from the new one",
        min=0.0, max=1.0,
    )

    def validate(self) -> None:
        import math
        import re

        if self.run_date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.run_date):
            raise ConfigError(f"config key 'run_date' must be a date YYYY-MM-DD, got {self.run_date!r}")
        for key, bounds in (("min_metrics", self.min_metrics), ("max_metrics", self.max_metrics)):
            for path, value in bounds.items():
                try:
                    number = float(value)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number) or not path.strip("."):
                    raise ConfigError(f"config key '{key}.{path}' must be a finite number, got {value!r}")


# ---- index (issue 23: Faiss ANN index beside a table) ----
@dataclass(frozen=True)
class IndexConfig:
    """``embedpipe index``: build the Faiss ANN index of a table into ``<table>/_index/`` (docs/jobs.md)."""

    table: str = option(help="embedding table directory; the index is written into its _index/ sub-directory")
    kind: str = option(
        "auto", "auto: hnsw up to 2,000,000 rows, ivf-pq above; force hnsw above that on a machine with memory "
        "for the graph (about 4 x dim + 150 bytes a row), ivf-pq below it to save memory (about dim / 2 + 8 bytes "
        "a row; lower recall)", choices=("auto", "hnsw", "ivf-pq"),
    )
    target_recall: float = option(
        0.95, "recall@10 the build calibrates the search for (efSearch or nprobe raised until 1,000 sampled keys "
        "find this share of their exact top 10; auto replaces an hnsw graph that cannot reach it by ivf-pq): lower it "
        "for faster searches that miss more near neighbours, raise it toward 1 when misses matter more than speed",
        min=0.0, max=1.0, min_exclusive=True,
    )


# ---- export / import (issue 23: word2vec, GloVe and fastText vectors files) ----
@dataclass(frozen=True)
class ExportConfig:
    """``embedpipe export``: embedding table -> a word2vec / fastText vectors file (docs/interop.md)."""

    table: str = option(help="embedding table directory")
    output: str = option(
        help="vectors file to write (written under a temporary name beside it, then renamed; an existing file "
        "there is replaced, a directory refused)"
    )
    format: str = option(
        help="word2vec (text, what most tools read), word2vec-binary (4 bytes a value, exact float32; for large "
        "tables) or fasttext-vec (fastText's .vec, the same text layout)", choices=EXPORT_FORMATS,
    )


@dataclass(frozen=True)
class ImportConfig:
    """``embedpipe import``: a word2vec / GloVe / fastText vectors file -> embedding table (docs/interop.md)."""

    input: str = option(help="vectors file (local or any URI pyarrow reads; .gz and .bz2 are decompressed)")
    output: str = option(help="embedding table directory; replaced atomically")
    format: str = option(
        help="word2vec (text with a 'rows dim' header), word2vec-binary, glove (text, no header) or fasttext-vec "
        "(fastText's .vec)", choices=IMPORT_FORMATS,
    )
    key_kind: str = option(
        "token", "what the keys are: token (words; evaluate's word lists apply) or item (e.g. item2vec vectors to "
        "score recommendations with)", choices=("token", "item"),
    )
