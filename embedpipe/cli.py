"""The ``embedpipe`` command and the ``jobs/<name>.py`` entry points share this parser.

Flow of every job: parse flags -> load and validate config (no Spark yet, so a bad config fails in
milliseconds) -> build the SparkSession -> call the job's one library function -> exit code.
User errors (:class:`~embedpipe.errors.EmbedpipeError`) become one line on stderr and a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from embedpipe import __version__
from embedpipe.config import (
    add_config_arguments,
    config_to_dict,
    parse_overrides,
    read_config_file,
    resolve_config,
)
from embedpipe.errors import ConfigError, EmbedpipeError
from embedpipe.jobconfig import (
    RETIRED_NEIGHBORS_KEYS,
    DemoConfig,
    EmbedConfig,
    EvaluateConfig,
    ExportConfig,
    HistoriesConfig,
    ImportConfig,
    IndexConfig,
    NeighborsConfig,
    PublishConfig,
    SparkSettings,
    TokenizeConfig,
    TrainConfig,
)
from embedpipe.methods.settings import old_flat_keys

log = logging.getLogger("embedpipe")


@dataclass(frozen=True)
class Job:
    name: str
    config_class: type
    runner: str  # "module:function", imported only when the job runs
    summary: str


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("demo", DemoConfig, "embedpipe.demo.pipeline:run_demo",
            "generate a planted demo corpus and watch log, tokenize, train, evaluate, print neighbours"),
        Job("tokenize", TokenizeConfig, "embedpipe.text.pipeline:run_tokenize",
            "text corpus -> tokens, vocabulary, bag-of-words and one-hot vectors"),
        Job("histories", HistoriesConfig, "embedpipe.interactions.pipeline:run_histories",
            "interaction log -> per-user item sequences, item vocabulary, user x item vectors"),
        Job("train", TrainConfig, "embedpipe.methods.pipeline:run_train",
            "tokenize or histories output -> embedding table (word2vec, pca, sgns, item2vec, softmax, regression, "
            "als, popularity)"),
        Job("evaluate", EvaluateConfig, "embedpipe.evaluate.pipeline:run_evaluate",
            "embedding table -> similarity, analogy, coverage, neighbours, 2-D plot report"),
        Job("embed", EmbedConfig, "embedpipe.lookup.embed:run_embed",
            "dataset + embedding table -> every row with the combined vector of its tokens/items"),
        Job("neighbors", NeighborsConfig,
            "embedpipe.lookup.neighbors:run_neighbors",
            "embedding table -> top-k cosine neighbours of every key (or queries) and analogy answers"),
        Job("publish", PublishConfig, "embedpipe.publish:run_publish",
            "quality gate on an evaluate report, then an atomic copy of the table to a stable published path"),
        Job("export", ExportConfig, "embedpipe.interop.export:run_export",
            "embedding table -> word2vec (text or binary) or fastText .vec vectors file"),
        Job("import", ImportConfig, "embedpipe.interop.importer:run_import",
            "word2vec (text or binary), GloVe or fastText .vec vectors file -> embedding table"),
        Job("index", IndexConfig, "embedpipe.index.build:run_index",
            "embedding table -> Faiss ANN index in <table>/_index/ (HNSW or IVF-PQ) for neighbors --method index"),
    )
}

#: spark-submit scripts named differently from their job (``import`` is a Python keyword).
_SCRIPT_NAMES = {"import": "import_vectors"}

SECTIONS = frozenset(JOBS) | {"spark"}


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    common = parser.add_argument_group("common options")
    common.add_argument("--config", metavar="FILE", help="TOML config file ([<job>] and [spark] sections)")
    common.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key (repeatable); spark.* keys go to the [spark] section, train's <method>.* keys "
             "to its [train.<method>] section (e.g. sgns.window=8)",
    )
    common.add_argument("--master", dest="spark_master", help="Spark master when not run by spark-submit")
    common.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="embedpipe log level (default: INFO)")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full ``embedpipe`` parser, or a single job's parser for ``jobs/<name>.py``."""
    if only is not None:
        job = JOBS[only]
        script = _SCRIPT_NAMES.get(only, only)
        parser = argparse.ArgumentParser(prog=f"jobs/{script}.py", description=job.summary, epilog=_epilog(job),
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_job_arguments(parser, job)
        return parser
    parser = argparse.ArgumentParser(prog="embedpipe", description="Embedding tables from corpora and logs, on Spark.")
    parser.add_argument("--version", action="version", version=f"embedpipe {__version__}")
    sub = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    for job in JOBS.values():
        _add_job_arguments(sub.add_parser(job.name, help=job.summary, description=job.summary, epilog=_epilog(job),
                                          formatter_class=argparse.RawDescriptionHelpFormatter), job)
    return parser


def _epilog(job: Job) -> str | None:
    """Extra ``--help`` text a config class offers (train: every method's own keys)."""
    help_epilog = getattr(job.config_class, "help_epilog", None)
    return help_epilog() if help_epilog is not None else None


def _add_job_arguments(parser: argparse.ArgumentParser, job: Job) -> None:
    parser.set_defaults(job=job.name)
    add_config_arguments(parser.add_argument_group(f"{job.name} options"), job.config_class, dest_prefix="cfg_")
    _add_common_arguments(parser)


def load_job_config(job: Job, args: argparse.Namespace) -> tuple[Any, SparkSettings]:
    """Resolve the job's config and the Spark settings from file, --set and flags."""
    sections: dict[str, Any] = {}
    if args.config:
        sections = read_config_file(args.config)
        for name, value in sections.items():
            if name not in SECTIONS:
                raise ConfigError(
                    f"unknown config section '{name}' in {args.config} (known: {', '.join(sorted(SECTIONS))})"
                )
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' must be a [section]")
    overrides = parse_overrides(args.overrides)
    job_overrides = {k: v for k, v in overrides.items() if not k.startswith("spark.")}
    spark_overrides = {k[len("spark."):]: v for k, v in overrides.items() if k.startswith("spark.")}
    flags = {k[len("cfg_"):]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    # flags of keys that moved into a section (train's --epochs): the resolver names their new key
    flags.update({name: None for name in getattr(args, "moved_flags", ())})
    from_sources = getattr(job.config_class, "from_sources", None)
    if from_sources is not None:  # a config with sub-sections resolves its own layers
        config = from_sources(file_section=sections.get(job.name), overrides=job_overrides, flags=flags)
    else:
        config = resolve_config(job.config_class, file_section=sections.get(job.name), overrides=job_overrides,
                                flags=flags)
    spark_flags = {"master": args.spark_master} if args.spark_master else {}
    spark_settings = resolve_config(
        SparkSettings, file_section=sections.get("spark"), overrides=spark_overrides, flags=spark_flags
    )
    return config, spark_settings


def _resolve_runner(job: Job) -> Callable[..., dict[str, Any]]:
    module_name, _, function_name = job.runner.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (callers such as tests may swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _configure_logging(level: str) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("embedpipe")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; a flag of a key that moved into a section (``train --epochs``) is kept
    in ``moved_flags``, so the config error can say the key's new name instead of argparse's usage line."""
    args, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    moved = [_flag_key(token) for token in unknown if token.startswith("--")]
    if unknown and (not moved or not all(key in _MOVED_FLAGS for key in moved)):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.moved_flags = moved
    return args


def _flag_key(token: str) -> str:
    key = token[2:].partition("=")[0].replace("-", "_")
    return key.removeprefix("no_") if key.removeprefix("no_") in _MOVED_FLAGS else key


def run(argv: Sequence[str] | None = None, *, only: str | None = None) -> int:
    parser = build_parser(only)
    args = parse_arguments(parser, argv)
    job = JOBS[args.job]
    prog = f"embedpipe {job.name}"
    _configure_logging(args.log_level)
    try:
        config, spark_settings = load_job_config(job, args)
        log.info("%s config: %s", job.name, json.dumps(config_to_dict(config), sort_keys=True))
        runner = _resolve_runner(job)
        from embedpipe.sparkenv import build_spark_session

        spark = build_spark_session(spark_settings, app_name=f"embedpipe-{job.name}")
        if job.name in _EARLY_OUTPUT_CHECK:
            _check_outputs_early(spark, config)
        summary = runner(spark, config)
    except EmbedpipeError as exc:
        print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    display = summary.pop("display", None) if isinstance(summary, dict) else None
    if display:
        print(display)
    if summary:
        log.info("%s done: %s", job.name, json.dumps(summary, sort_keys=True, default=str))
    return 0


#: Jobs whose outputs are plain atomic outputs (demo writes a folder of them; evaluate and publish
#: check their outputs against their inputs themselves, naming their own keys).
_EARLY_OUTPUT_CHECK = frozenset({"tokenize", "histories", "train", "embed", "neighbors"})
_OUTPUT_KEYS = ("output", "doc_output", "analogy_output", "export_output_vectors")
_INPUT_KEYS = ("input", "table", "histories")


def _check_outputs_early(spark: object, config: object) -> None:
    """Refuse an unsafe output path before the job computes anything (the commit checks again)."""
    from embedpipe.storage import check_output_path

    inputs = tuple(p for p in (getattr(config, key, None) for key in _INPUT_KEYS) if isinstance(p, str))
    settings = getattr(config, "settings", None)  # train: the method's own outputs (doc_output, ...)
    for key in _OUTPUT_KEYS:
        for holder in (config, settings):
            target = getattr(holder, key, None)
            if isinstance(target, str) and target:
                check_output_path(spark, target, inputs=inputs)  # type: ignore[arg-type]


#: Flags of the old flat train keys (refused with the key's new name, see embedpipe.methods.settings) and of
#: neighbors' retired LSH keys (refused pointing to --method index).
_MOVED_FLAGS = frozenset(old_flat_keys()) | RETIRED_NEIGHBORS_KEYS


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``embedpipe <job> [options]``."""
    return run(argv)


def job_main(name: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jobs/<name>.py`` (same options as ``embedpipe <name>``)."""
    return run(argv, only=name)


if __name__ == "__main__":
    sys.exit(main())
