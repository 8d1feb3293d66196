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
    output: str = option(help="output directory (sequences/, vocab/, vectors/, report.json); replaced atomically")
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

    def validate(self) -> None:
        if self.rating_threshold is not None and self.weight_column is None:
            raise ConfigError("config key 'rating_threshold' needs weight_column (the rating column to compare)")


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
    epochs: int = option(1, "word2vec, sgns: passes over the corpus (MLlib maxIter)", min=1)
    partitions: int = option(1, "word2vec: MLlib numPartitions (more is faster, slightly worse)", min=1)
    step_size: float = option(0.025, "word2vec, sgns: initial learning rate", min=0.0, min_exclusive=True)
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
    # sgns (embedpipe's PyTorch trainer, embedpipe.trainer)
    negative: int = option(5, "sgns: noise words per (center, context) pair", min=1)
    sample: float = option(1e-3, "sgns: subsampling threshold for frequent words (0 = off)", min=0.0)
    min_lr: float = option(1e-4, "sgns: learning rate reached at the end (linear decay)", min=0.0)
    batch_size: int = option(1024, "sgns: center words per step (larger keeps a GPU busier)", min=1)
    negative_mode: str = option(
        "target", "sgns: noise replaces the center word (target), the context word (context) or both",
        choices=("target", "context", "both"),
    )
    device: str = option("auto", "sgns: auto (cuda if a GPU is assigned or visible), cpu or cuda",
                         choices=("auto", "cpu", "cuda"))
    processes: int = option(1, "sgns: model replicas, one Spark barrier task each (data parallel)", min=1)
    averages_per_epoch: int = option(10, "sgns: how often per epoch the replicas average their matrices", min=1)
    threads: int | None = option(None, "sgns: CPU threads per replica (default: torch's default)", min=1)
    deterministic: bool = option(
        True, "sgns: CPU threads in lock-step, same vectors for any thread count (true), or lock-free "
        "Hogwild threads as in gensim, faster but different on every run (false)",
    )
    # item2vec (sgns over item histories)
    # softmax, regression (embedding bag inside a larger model)
    # als, popularity (recommendation baselines)

    def validate(self) -> None:
        if self.doc_output is not None and self.doc_output.rstrip("/") == self.output.rstrip("/"):
            raise ConfigError("config key 'doc_output' must differ from 'output'")


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
    seed: int = option(42, "approximate: random hyperplane seed", min=0)
    analogies: list[str] = option(
        [], "analogy queries 'a b c' (answers a - b + c, inputs excluded), e.g. 'king man woman'"
    )
    analogy_output: str | None = option(None, "also write the analogy answers here as Parquet (a, b, c, answer, "
                                              "score, rank)")
