"""The settings of every job, declared once (help, defaults, constraints).

A config file groups keys under one section per job (``[tokenize]``, ``[train]``, ...) plus a
``[spark]`` section shared by all jobs; see ``conf/`` for examples and the README for the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.config import option
from embedpipe.errors import ConfigError

INPUT_FORMATS = ("auto", "text", "parquet", "json", "csv")
LOG_FORMATS = ("auto", "csv", "parquet", "json", "udata")


@dataclass(frozen=True)
class SparkSettings:
    """Where and how the SparkSession runs (ignored parts are set by spark-submit)."""

    master: str | None = option(None, "Spark master URL when not launched by spark-submit, e.g. local[4]")
    app_name: str | None = option(None, "Spark application name (default: embedpipe-<job>)")
    driver_memory: str | None = option(None, "spark.driver.memory for local runs, e.g. 4g")
    shuffle_partitions: int | None = option(None, "spark.sql.shuffle.partitions", min=1)
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

    def tokenizer(self) -> TokenizerSettings:
        return TokenizerSettings(
            lowercase=self.lowercase,
            min_token_length=self.min_token_length,
            max_token_length=self.max_token_length,
            stop_words=self.stop_words,
            keep_numbers=self.keep_numbers,
        )

    def validate(self) -> None:
        if self.max_token_length < self.min_token_length:
            raise ConfigError("config key 'max_token_length' must be >= min_token_length")


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
    holdout_min_train_items: int = option(
        1, "holdout: a user is split only if at least this many distinct items stay in training", min=1
    )
    holdout_seed: int = option(42, "holdout = random: seed of the per-user item choice", min=0)

    def validate(self) -> None:
        if self.rating_threshold is not None and self.weight_column is None:
            raise ConfigError("config key 'rating_threshold' needs weight_column (the rating column to compare)")
        if self.holdout == "last" and self.time_column is None:
            raise ConfigError("config key 'holdout' = last needs time_column (the column that orders the history)")


TRAIN_METHODS = ("word2vec", "pca", "sgns", "item2vec", "softmax", "regression", "als", "popularity")


@dataclass(frozen=True)
class TrainConfig:
    """``embedpipe train``: tokenize or histories output -> embedding table (and, for pca, document vectors)."""

    input: str = option(
        help="a tokenize output (tokens/, vocab/, bow/) or histories output (sequences/, vocab/, vectors/)"
    )
    output: str = option(help="embedding table directory; replaced atomically")
    method: str = option("word2vec", "training method", choices=TRAIN_METHODS)
    dim: int = option(100, "embedding dimension", min=1)
    seed: int = option(42, "random seed", min=0)
    # word2vec (pyspark.ml.feature.Word2Vec)
    window: int = option(5, "word2vec, sgns: context window size", min=1)
    min_count: int = option(
        1, "word2vec: also drop vocabulary words counted fewer than this many times (the table keeps exactly the "
        "remaining vocabulary; MLlib's own minCount is always 1)", min=1,
    )
    epochs: int | None = option(
        None, "word2vec, sgns, item2vec: passes over the corpus (MLlib maxIter); default 1; item2vec: enough passes "
        "to train on about 20M interactions in all (1 pass from 20M training interactions up, 5 at 4M, at most "
        "30), so a small log is not undertrained", min=1,
    )
    partitions: int = option(1, "word2vec: MLlib numPartitions (more is faster, slightly worse)", min=1)
    step_size: float | None = option(
        None, "word2vec, sgns, item2vec: initial learning rate (default: each method's own — word2vec 0.025 as "
        "MLlib, sgns 0.05 as fastText, item2vec 0.025)", min=0.0, min_exclusive=True,
    )
    max_sentence_length: int = option(
        1000, "word2vec: longer documents are split into chunks of this many tokens", min=1
    )
    # pca
    pca_solver: str = option(
        "auto", "pca: 'pca' (MLlib PCA, centred), 'svd' (distributed truncated SVD), auto: svd above pca_max_columns",
        choices=("auto", "pca", "svd"),
    )
    pca_max_columns: int = option(
        10_000, "pca: auto switches to the SVD path above this vocabulary size", min=1, max=65_535
    )
    pca_scaling: str = option(
        "singular",
        "pca: word vectors are component rows times singular values ('singular'), their square root ('sqrt') "
        "or unscaled ('none')",
        choices=("singular", "sqrt", "none"),
    )
    doc_output: str | None = option(None, "pca: also write document embeddings as a table here")
    # sgns (embedpipe's PyTorch trainer, embedpipe.torchtrain)
    negative: int = option(5, "sgns, item2vec: noise words per (center, context) pair", min=1)
    sample: float = option(1e-3, "sgns, item2vec: subsampling threshold for frequent words (0 = off)", min=0.0)
    min_lr: float = option(1e-4, "sgns, item2vec: learning rate reached at the end (linear decay)", min=0.0)
    max_exp: float = option(
        6.0, "sgns, item2vec: skip the update of a term whose score u.v is at least this far from 0, as gensim "
        "does (word2vec's MAX_EXP); 0 updates every term", min=0.0,
    )
    step_cap: str = option(
        "row", "sgns, item2vec: the batched step's bound on a row's move (see SGNSParams.step_cap): 'row' "
        "(conservative) or 'line' (longer steps along the summed gradient: higher scores measured on a 450k-token "
        "corpus, lower on a 24M-token one)",
        choices=("row", "line"),
    )
    batch_size: int | None = option(
        None,
        "sgns, item2vec: center words per step (default: sgns's batched step picks from the corpus size, 1,024 "
        "to 65,536 — big steps keep a GPU busy; the pairwise CPU kernel and item2vec 1,024); above 1,024 the "
        "batched step scales step_size by sqrt(batch_size / 1024) (the pairwise kernel uses it as is)",
        min=1,
    )
    negative_mode: str = option(
        "target", "sgns, item2vec: noise replaces the center word (target), the context word (context) or both",
        choices=("target", "context", "both"),
    )
    device: str = option("auto", "sgns, item2vec: auto (cuda if a GPU is assigned or visible), cpu or cuda",
                         choices=("auto", "cpu", "cuda"))
    processes: int = option(1, "sgns, item2vec: model replicas, one Spark barrier task each (data parallel)", min=1)
    averages_per_epoch: int = option(10, "sgns, item2vec: how often per epoch the replicas sum their updates", min=1)
    threads: int | None = option(None, "sgns, item2vec: CPU threads per replica (default: torch's default)", min=1)
    deterministic: bool = option(
        True, "sgns, item2vec: CPU results that do not depend on the thread count (true), or lock-free "
        "Hogwild threads as in gensim, faster but different on every run (false)",
    )
    cpu_kernel: str = option(
        "auto", "sgns, item2vec: CPU step: pairwise (word2vec's per-pair SGD compiled with numba, the fastest), "
        "batched (the GPU's step) or auto (pairwise when numba is installed)", choices=("auto", "pairwise", "batched"),
    )
    cuda_kernel: str = option(
        "auto", "sgns, item2vec: CUDA step: pairwise (word2vec's per-pair SGD, a warp per window; needs numba-cuda; "
        "gensim's quality at 25M words/s on an H200), batched (window blocks, capped per row; 28M words/s, "
        "planted similarity below gensim) or auto (pairwise where it can run, else batched)",
        choices=("auto", "batched", "pairwise"),
    )
    checkpoint_dir: str | None = option(
        None, "sgns, item2vec: save each replica's training state after every epoch to <dir>/replica-<r>/ "
        "(a local or shared directory every replica can reach)",
    )
    resume: bool = option(
        False, "sgns, item2vec: continue from the last completed epoch saved in checkpoint_dir (same params)"
    )
    # item2vec (sgns over item histories)
    item_window: int = option(
        5, "item2vec: items within this many positions of each other in a user's time-ordered history are "
        "positives, all with equal weight (a history up to this length + 1 is a set: all its pairs)", min=1,
    )
    item_sample: float = option(
        0.0, "item2vec: subsampling threshold for popular items (0 = off; sgns's 'sample' is for words: with "
        "subsampling the context vectors favour rare items and two-tower scoring loses recall)", min=0.0,
    )
    # softmax, regression (embedding bag inside a larger model)
    # They also use dim, seed, device, processes, averages_per_epoch and threads; epochs, step_size and
    # batch_size are sgns's (their defaults undertrain a bag model), so these methods have bag_* keys.
    bag_epochs: int = option(20, "softmax, regression: passes over the rows (users or texts)", min=1)
    bag_step_size: float = option(0.01, "softmax, regression: Adam learning rate", min=0.0, min_exclusive=True)
    bag_batch_size: int = option(128, "softmax, regression: rows (users or texts) per optimiser step", min=1)
    output_bias: bool = option(
        False, "softmax: learn a logit bias per item; without it (default) mean(input vectors) . output vector is "
        "the model's score, so the table and export_output_vectors rank by it (evaluate --candidate-table)"
    )
    hidden: list[int] = option([], "softmax, regression: sizes of the ReLU layers after the embedding bag "
                                   "(empty = none), e.g. hidden=64,32", min=1)
    combiner: str = option(
        "auto", "softmax, regression: how a bag's vectors are pooled: weighted mean, sqrtn (sum / sqrt(sum of "
        "squared weights)) or sum; auto = mean for softmax, sum for regression",
        choices=("auto", "mean", "sqrtn", "sum"),
    )
    dropout: float | None = option(
        None, "softmax, regression: dropout on the pooled vector and hidden layers (default: 0.3 for softmax, "
        "which raised Recall@20 at 6k-1M users, 0 for regression)", min=0.0, max=0.9,
    )
    sampled: int = option(
        0, "softmax: 0 = full softmax over the catalogue; else negatives shared by each batch for a sampled "
        "softmax with log-Q correction (for catalogues of ~100k+ items)", min=0,
    )
    proposal_power: float = option(0.75, "softmax: sampled negatives drawn with probability count^power",
                                   min=0.0, max=1.0)
    target_items: int = option(
        20, "softmax: items held out of each user's input every epoch as the targets to predict (resampled "
        "each epoch; the trainer's 'holdout'); a user with no more items holds out all but one", min=1,
    )
    export_output_vectors: str | None = option(
        None, "sgns, item2vec, softmax: also write the output vectors as a second table here, same keys (sgns, "
        "item2vec: the context vectors; softmax: the softmax weights, dim = last hidden size or dim); "
        "evaluate --candidate-table scores against it"
    )
    validation_fraction: float = option(
        0.1, "regression: share of rows held out (seeded) for RMSE/MAE of the model, the mean predictor "
        "and ridge", min=0.0, max=0.9,
    )
    ridge_alpha: float = option(1.0, "regression: L2 penalty of the ridge baseline on bag-of-words counts",
                                min=0.0, min_exclusive=True)
    # als, popularity (recommendation baselines)
    als_reg: float = option(0.1, "als: regParam, L2 regularisation of the factors (Spark's default)", min=0.0)
    als_alpha: float = option(1.0, "als: alpha, confidence = 1 + alpha * interactions (implicit feedback)", min=0.0)
    als_iterations: int = option(10, "als: maxIter, alternating least-squares sweeps", min=1)

    def resolved_step_size(self, default: float) -> float:
        """``step_size`` where the job sets it, else the method's ``default``."""
        return default if self.step_size is None else self.step_size

    def resolved_epochs(self, default: int = 1) -> int:
        """``epochs`` where the job sets it, else ``default`` (item2vec passes one scaled to its log)."""
        return default if self.epochs is None else self.epochs

    def validate(self) -> None:
        if self.doc_output is not None and self.doc_output.rstrip("/") == self.output.rstrip("/"):
            raise ConfigError("config key 'doc_output' must differ from 'output'")
        if self.export_output_vectors is not None:
            if self.method not in ("sgns", "item2vec", "softmax"):
                raise ConfigError(
                    f"config key 'export_output_vectors' is only used by methods sgns, item2vec and softmax, "
                    f"not {self.method}"
                )
            if self.export_output_vectors.rstrip("/") == self.output.rstrip("/"):
                raise ConfigError("config key 'export_output_vectors' must differ from 'output'")
        if self.method in ("softmax", "regression"):
            import dataclasses

            for key, bag_key in (("epochs", "bag_epochs"), ("step_size", "bag_step_size"),
                                 ("batch_size", "bag_batch_size")):
                field = next(f for f in dataclasses.fields(self) if f.name == key)
                if getattr(self, key) != field.default:
                    raise ConfigError(
                        f"config key '{key}' is not used by method {self.method}; set '{bag_key}' instead "
                        f"(now {getattr(self, bag_key)})"
                    )


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
    """``embedpipe demo``: generate a planted corpus and watch log, then tokenize, train and evaluate."""

    output: str = option("out/demo", "directory for the demo's data, tables and reports")
    documents: int = option(20_000, "documents in the generated corpus (about 12 tokens each)", min=10)
    users: int = option(2_000, "users in the generated watch log", min=10)
    seed: int = option(7, "generator and training seed", min=0)
    method: str = option("word2vec", "training method", choices=TRAIN_METHODS)
    dim: int = option(50, "embedding dimension", min=2)
    epochs: int = option(3, "training epochs (word2vec)", min=1)


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
        "mean", "how a row's vectors combine: mean, sum (distinct keys), weighted_sum (counts/values, S.E), "
        "tfidf, sqrtn (S.E / ||s||_2)", choices=("mean", "sum", "weighted_sum", "tfidf", "sqrtn"),
    )
    idf: str = option("table", "tfidf: document frequencies from the table's counts or from the input",
                      choices=("table", "input"))
    normalize: bool = option(False, "L2-normalise every output vector")
    oov: str = option("skip", "tokens not in the table: skip them, count them as zero vectors, or fail the job",
                      choices=("skip", "zero", "fail"))
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
        "exact", "exact: blocked matrix products against the broadcast table; approximate: random-hyperplane "
        "LSH buckets, exact scores within candidate buckets", choices=("exact", "approximate"),
    )
    block_rows: int = option(4096, "exact: query rows per block (one matrix product per block)", min=1)
    lsh_bits: int = option(12, "approximate: hyperplanes per hash (about rows / 2^bits keys per bucket)",
                           min=1, max=30)
    lsh_tables: int = option(4, "approximate: independent hash tables (more = better recall, slower)", min=1)
    lsh_max_bucket: int = option(
        5000, "approximate: buckets with more keys are split by up to 16 extra hyperplanes (bounds the "
        "quadratic work per bucket)", min=2,
    )
    seed: int = option(42, "approximate: random hyperplane seed", min=0)
    analogies: list[str] = option(
        [], "analogy queries 'a b c' (answers a - b + c, inputs excluded), e.g. 'king man woman'"
    )
    analogy_output: str | None = option(None, "also write the analogy answers here as Parquet (a, b, c, answer, "
                                              "score, rank)")


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
