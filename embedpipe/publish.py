"""``embedpipe publish``: the nightly quality gate, then publication of the table at a stable path.

Consumers (Spark, pandas, DuckDB, :func:`embedpipe.lookup.open_table`) want one path that always
holds the latest good table, readable with no embedpipe-specific pointer logic. So publication is
a *copy* of the run's table directory (part files, ``_SUCCESS``, ``_manifest.json``, byte for byte
through the Hadoop FileSystem API) into a staging directory beside the published path, plus a
``_published.json`` record (run date, source table, report, every check with its value), committed
by :func:`embedpipe.storage.atomic_output`'s renames. Nothing is copied until every check passed,
so a failing gate leaves the previously published table exactly as it was.

The table is held to the format first (:func:`embedpipe.table.check_table_spark`: the same checks
every reader applies -- NaN/Inf, vector lengths, NULL or duplicate keys, the manifest's row count),
so a table broken after it was written (or written by another tool) is never published.

Drift (:mod:`embedpipe.drift`): when a table is published already, the new one is compared with it
(neighbour overlap@k and the orthogonal Procrustes residual on the most frequent shared keys,
vocabulary churn); the metrics are logged, returned in the job summary and recorded in
``_published.json``, and the ``[publish]`` drift thresholds are checks like the quality ones (a
failure exits 4 and leaves the published table as it was). With ``report_output`` the same record,
with the outcome, is also written there as ``report.json``, failed gate included: the one file that
holds every night's checks and drift, whether the table was published or not. The first publication has nothing to
compare with: drift is skipped, and recorded as such.

The gate reads the evaluate ``report.json`` (a report-sized file, read on the driver) and checks
that it was made from this very table (the manifest fields the report copied must match), then
applies the configured thresholds. A threshold on a metric the report does not have fails the gate:
a gate that silently passes because evaluation stopped measuring something is worse than none.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedpipe import __version__, schema
from embedpipe.errors import ConfigError, EmbedpipeError, InputError, TableError
from embedpipe.jobconfig import PublishConfig
from embedpipe.table import check_table_spark, read_manifest_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.storage import HadoopFS

log = logging.getLogger(__name__)

PUBLISHED_FILE = "_published.json"
# Fields evaluate copies from the table's manifest into report["table"]; equal fields prove the report
# was made from this table and not from an older run at the same path.
REPORT_TABLE_FIELDS = ("method", "dim", "rows", "seed", "created_at", "embedpipe_version")


class QualityGateError(EmbedpipeError):
    """The table or its evaluation is below a configured threshold; nothing was published."""

    exit_code = 4


@dataclass(frozen=True)
class Check:
    """One threshold applied to one measured value."""

    name: str  # what was measured, e.g. "similarity 'wordsim353' spearman"
    key: str  # the config key that set the bound
    value: float | None
    bound: float
    upper: bool  # True: value must be <= bound

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.bound if self.upper else self.value >= self.bound

    def describe(self) -> str:
        if self.value is None:
            return f"{self.name} was not measured ({self.key} {self.bound:g})"
        relation = ">" if self.upper else "<"
        return f"{self.name} {self.value:.4g} {relation} {self.key} {self.bound:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.name, "key": self.key, "value": self.value, "bound": self.bound,
                "kind": "max" if self.upper else "min", "passed": self.passed}


# ---------------------------------------------------------------------------- the gate (Spark-free)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _lookup(report: dict[str, Any], path: str) -> Any:
    """Follow a dotted path through report.json; a list step picks the entry whose name matches."""
    node: Any = report
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list):
            node = next((e for e in node if isinstance(e, dict) and part in (e.get("name"), e.get("section"))),
                        None)
        else:
            return None
        if node is None:
            return None
    return node


def quality_checks(report: dict[str, Any], table_rows: int, config: PublishConfig) -> list[Check]:
    """Every configured threshold as a :class:`Check` against the report (and the table's row count)."""
    checks = [Check("rows", "min_rows", float(table_rows), float(config.min_rows), upper=False)]
    similarity = report.get("similarity") or []
    analogies = report.get("analogies") or []
    if config.min_similarity_spearman is not None:
        if not similarity:
            checks.append(Check("similarity spearman", "min_similarity_spearman", None,
                                config.min_similarity_spearman, upper=False))
        checks += [
            Check(f"similarity '{s.get('name')}' spearman", "min_similarity_spearman", _number(s.get("spearman")),
                  config.min_similarity_spearman, upper=False)
            for s in similarity
        ]
    if config.min_analogy_accuracy is not None:
        if not analogies:
            checks.append(Check("analogy accuracy", "min_analogy_accuracy", None,
                                config.min_analogy_accuracy, upper=False))
        checks += [
            Check(f"analogy '{a.get('name')}' accuracy", "min_analogy_accuracy", _number(a.get("accuracy")),
                  config.min_analogy_accuracy, upper=False)
            for a in analogies
        ]
    if config.max_oov_rate is not None:
        coverage = report.get("coverage") or []
        if not coverage:
            checks.append(Check("oov rate", "max_oov_rate", None, config.max_oov_rate, upper=True))
        checks += [
            Check(f"{c.get('kind')} '{c.get('name')}' oov rate", "max_oov_rate", _number(c.get("oov_rate")),
                  config.max_oov_rate, upper=True)
            for c in coverage
        ]
    for key, bounds, upper in (("min_metrics", config.min_metrics, False), ("max_metrics", config.max_metrics, True)):
        checks += [
            Check(path, f"{key}.{path}", _number(_lookup(report, path)), float(bound), upper=upper)
            for path, bound in sorted(bounds.items())
        ]
    return checks


def drift_checks(metrics: dict[str, Any], config: PublishConfig) -> list[Check]:
    """The configured drift thresholds as checks against the measured drift (none when drift was skipped)."""
    if "skipped" in metrics:
        return []
    scope = f"(top {metrics['probes']} shared keys)"
    bounds = (
        (f"drift neighbour overlap@{metrics['k']} {scope}", "min_neighbour_overlap", "neighbour_overlap", False),
        (f"drift Procrustes residual {scope}", "max_procrustes_residual", "procrustes_residual", True),
        ("drift added keys fraction", "max_added_fraction", "added_fraction", True),
        ("drift removed keys fraction", "max_removed_fraction", "removed_fraction", True),
    )
    return [Check(name, key, _number(metrics.get(metric)), float(getattr(config, key)), upper=upper)
            for name, key, metric, upper in bounds if getattr(config, key) is not None]


def measure_published_drift(spark: SparkSession, config: PublishConfig, published_exists: bool) -> dict[str, Any]:
    """Drift of ``config.table`` from the table published at ``config.output`` (both read on the driver:
    vocabulary-sized), or a record saying why it was skipped."""
    from embedpipe.drift import measure_drift
    from embedpipe.table import read_embedding_table_spark

    if not published_exists:
        return {"skipped": "nothing published yet (first publication)"}
    previous = read_embedding_table_spark(spark, config.output)
    current = read_embedding_table_spark(spark, config.table)
    metrics = measure_drift(previous, current, top=config.drift_keys, k=config.drift_k).to_dict()
    return {**metrics, "published_rows": len(previous), "published_created_at": previous.manifest.get("created_at")}


def check_report_matches_table(report: dict[str, Any], manifest: dict[str, Any], report_path: str) -> None:
    """Refuse a report that was made from another table (e.g. a stale report of an earlier run)."""
    evaluated = report.get("table")
    if not isinstance(evaluated, dict):
        raise InputError(f"{report_path} is not an embedpipe evaluate report (no 'table' section)")
    for field in REPORT_TABLE_FIELDS:
        if field in evaluated and evaluated[field] != manifest.get(field):
            raise InputError(
                f"{report_path} evaluated another table: its {field} is {evaluated[field]!r}, the table's manifest "
                f"says {manifest.get(field)!r} (rerun evaluate on this table)"
            )


# ---------------------------------------------------------------------------- I/O through Hadoop FS


def _read_json(fs: HadoopFS, path: str, what: str) -> dict[str, Any]:
    if not fs.exists(path):
        raise InputError(f"{what} not found: {path}")
    try:
        data = json.loads(fs.read_text(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return data


def _report_file(report: str) -> str:
    if report.endswith(".json"):
        return report
    return f"{report.rstrip('/')}/{schema.REPORT_FILE}"


def _copy_tree(spark: SparkSession, src: str, dst: str) -> None:
    """Copy a directory byte for byte with Hadoop's FileUtil (same or different filesystems)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    src_path, dst_path = jvm.org.apache.hadoop.fs.Path(src), jvm.org.apache.hadoop.fs.Path(dst)
    copied = jvm.org.apache.hadoop.fs.FileUtil.copy(
        src_path.getFileSystem(conf), src_path, dst_path.getFileSystem(conf), dst_path, False, conf
    )
    if not copied:
        raise TableError(f"could not copy {src} to {dst}")


def _count_rows(spark: SparkSession, path: str) -> int:
    """Parquet row count (footer metadata only; no data pages are read, no schema-inference job)."""
    from embedpipe.storage import read_parquet

    return int(read_parquet(spark, path).count())


def _rerun_drift(fs: HadoopFS, output: str, run_date: str | None, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The drift recorded when this very table was published for this run_date (a rerun republishes the
    same record instead of measuring the table against itself)."""
    record = f"{output.rstrip('/')}/{PUBLISHED_FILE}"
    if run_date is None or not fs.exists(record):
        return None
    try:
        published = json.loads(fs.read_text(record))
    except ValueError:
        return None
    same = (published.get("run_date") == run_date and published.get("manifest_created_at") is not None
            and published.get("manifest_created_at") == manifest.get("created_at"))
    drift = published.get("drift")
    return drift if same and isinstance(drift, dict) else None


def _published_run_date(fs: HadoopFS, output: str) -> str | None:
    record = f"{output.rstrip('/')}/{PUBLISHED_FILE}"
    if not fs.exists(record):
        return None
    try:
        return json.loads(fs.read_text(record)).get("run_date")
    except (ValueError, AttributeError):
        log.warning("ignoring unreadable %s", record)
        return None


def _check_report_output(spark: SparkSession, path: str, inputs: tuple[str, ...]) -> None:
    """Refuse a ``report_output`` that would replace an input or a folder that is not an earlier gate report."""
    from embedpipe.errors import OutputError
    from embedpipe.storage import check_output_path

    try:
        check_output_path(spark, path, inputs=inputs, markers=(schema.REPORT_FILE,))
    except OutputError as exc:
        raise type(exc)(f"config key 'report_output': {exc}") from None


def _write_gate_report(spark: SparkSession, config: PublishConfig, inputs: tuple[str, ...], record: dict[str, Any],
                       *, published: bool, reason: str | None) -> None:
    """Write ``report_output``/report.json (atomically): the ``_published.json`` record plus the outcome.

    Written whether the gate passed or not, so monitoring reads every night's drift and checks from one
    place; the published table itself only ever holds the record of a publication.
    """
    if config.report_output is None:
        return
    from embedpipe.storage import HadoopFS, atomic_output

    report = {"kind": "publish", "published": published, "output": config.output, **record}
    if reason is not None:
        report["reason"] = reason
        report.pop("published_at", None)
    fs = HadoopFS(spark)
    with atomic_output(spark, config.report_output, inputs=inputs, markers=(schema.REPORT_FILE,)) as staging:
        fs.write_text(f"{staging}/{schema.REPORT_FILE}", json.dumps(report, indent=2, sort_keys=True) + "\n")
    log.info("gate report (published: %s) written to %s", published, config.report_output)


def run_publish(spark: SparkSession, config: PublishConfig) -> dict[str, Any]:
    """Check the table and its report against the thresholds; on success replace ``config.output`` with it."""
    from embedpipe.storage import HadoopFS, atomic_output

    fs = HadoopFS(spark)
    table = fs.qualify(config.table).rstrip("/")
    output = fs.qualify(config.output).rstrip("/")
    if output == table or table.startswith(output + "/") or output.startswith(table + "/"):
        raise ConfigError(f"config key 'output' ({config.output}) must not be the table, inside it or above it "
                          f"({config.table})")
    manifest = read_manifest_spark(spark, config.table)
    report_path = _report_file(fs.qualify(config.report))
    report = _read_json(fs, report_path, "evaluation report")
    evaluated = report.get("table", {}).get("path") if isinstance(report.get("table"), dict) else None
    if evaluated and fs.qualify(str(evaluated)).rstrip("/") != table:
        raise InputError(f"{report_path} evaluated another table: {evaluated}, not {config.table} (rerun evaluate "
                         "on this table)")
    check_report_matches_table(report, manifest, report_path)
    inputs = (table, report_path, output)  # the gate's report may replace none of them, nor live inside one
    if config.report_output is not None:
        _check_report_output(spark, config.report_output, inputs)
    rows = check_table_spark(spark, config.table, manifest)

    checks = quality_checks(report, rows, config)
    drift = _rerun_drift(fs, output, config.run_date, manifest) or measure_published_drift(
        spark, config, fs.exists(output))
    log.info("drift from the published table: %s", json.dumps(drift, sort_keys=True))
    for name, value in drift.items():  # one line per metric: what Airflow's task log shows at a glance
        log.info("drift %s: %s", name, value)
    checks += drift_checks(drift, config)
    failed = [c for c in checks if not c.passed]
    for check in checks:
        log.info("gate %s: %s", "pass" if check.passed else "FAIL", check.describe())
    record = {
        "run_date": config.run_date,
        "table": table,
        "report": report_path,
        "rows": rows,
        "manifest_created_at": manifest.get("created_at"),
        "checks": [c.to_dict() for c in checks],
        "drift": drift,
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "embedpipe_version": __version__,
    }
    if failed:
        previous = _published_run_date(fs, output)
        if fs.exists(output):
            since = f" (run_date {previous})" if previous else ""
            kept = f"published table at {config.output} left unchanged{since}"
        else:
            kept = f"nothing published at {config.output}"
        message = f"quality gate failed: {'; '.join(c.describe() for c in failed)}; {kept}"
        _write_gate_report(spark, config, inputs, record, published=False, reason=message)
        raise QualityGateError(message)

    current = _published_run_date(fs, output)
    if config.run_date and current and current > config.run_date and not config.allow_older:
        reason = (f"not publishing run_date {config.run_date}: {config.output} already holds the later run_date "
                  f"{current} (set allow_older to replace it)")
        log.warning("%s", reason)
        _write_gate_report(spark, config, inputs, record, published=False, reason=reason)
        return {"published": False, "output": config.output, "run_date": config.run_date,
                "published_run_date": current, "checks": len(checks), "drift": drift}

    with atomic_output(spark, output, inputs=(table, report_path), markers=(PUBLISHED_FILE,)) as staging:
        _copy_tree(spark, table, staging)
        copied = _count_rows(spark, staging)
        if copied != rows:
            raise TableError(f"the copy of {table} has {copied} rows, expected {rows}")
        fs.write_text(f"{staging}/{PUBLISHED_FILE}", json.dumps(record, indent=2, sort_keys=True) + "\n")
    log.info("published %s (run_date %s, %d rows) at %s", table, config.run_date, rows, output)
    _write_gate_report(spark, config, inputs, record, published=True, reason=None)
    return {"published": True, "output": config.output, "run_date": config.run_date, "rows": rows,
            "checks": len(checks), "drift": drift}
