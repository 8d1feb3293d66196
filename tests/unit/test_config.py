"""Config loading: layers, types, constraints and the messages that name the key."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedpipe.cli import JOBS, build_parser, load_job_config
from embedpipe.config import build_config, parse_overrides, resolve_config
from embedpipe.errors import ConfigError
from embedpipe.jobconfig import SparkSettings, TrainConfig


def _load(argv: list[str], job: str = "train"):
    args = build_parser().parse_args([job, *argv])
    return load_job_config(JOBS[job], args)


def test_defaults_then_file_then_set_then_flags(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[train]\ninput = "in"\noutput = "out"\ndim = 10\nwindow = 3\nepochs = 2\n'
                    '[spark]\nmaster = "local[1]"\n')
    config, spark = _load(["--config", str(conf), "--set", "window=7", "--set", "epochs=4", "--epochs", "5"])
    assert (config.input, config.dim, config.window, config.epochs) == ("in", 10, 7, 5)
    assert config.seed == TrainConfig().seed
    assert spark.master == "local[1]"


def test_spark_overrides_and_conf_table(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[spark.conf]\n"spark.executor.memory" = "2g"\n')
    config, spark = _load(["--input", "i", "--output", "o", "--config", str(conf),
                           "--set", "spark.shuffle_partitions=3", "--set", "spark.conf.spark.foo=bar"])
    assert spark.shuffle_partitions == 3
    assert spark.conf == {"spark.executor.memory": "2g", "spark.foo": "bar"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "nope=1"], "unknown config key 'nope'"),
        (["--dim", "-3"], "config key 'dim' must be >= 1, got -3"),
        (["--dim", "abc"], "config key 'dim' must be an integer, got 'abc'"),
        (
            ["--method", "magic"],
            "config key 'method' must be one of word2vec, pca, sgns, item2vec, softmax, regression, als, popularity, "
            "got 'magic'",
        ),
        (["--step-size", "0"], "config key 'step_size' must be > 0.0, got 0.0"),
        (["--set", "window"], "--set expects key=value, got 'window'"),
        (["--set", "spark.log_level=LOUD"], "config key 'log_level' must be one of"),
    ],
)
def test_bad_values_name_the_key(argv, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        _load(["--input", "i", "--output", "o", *argv])


def test_required_key_missing():
    with pytest.raises(ConfigError, match="config key 'input' is required"):
        _load(["--output", "o"])


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        _load(["--config", str(bad)])
    unknown = tmp_path / "u.toml"
    unknown.write_text("[trian]\ndim = 3\n")
    with pytest.raises(ConfigError, match="unknown config section 'trian'"):
        _load(["--config", str(unknown)])
    wrong_type = tmp_path / "w.toml"
    wrong_type.write_text('[train]\ninput="i"\noutput="o"\ndim = "ten"\n')
    with pytest.raises(ConfigError, match="config key 'dim' must be an integer, got 'ten'"):
        _load(["--config", str(wrong_type)])
    with pytest.raises(ConfigError, match="config file not found"):
        _load(["--config", str(tmp_path / "missing.toml")])


def test_every_shipped_config_file_loads():
    from pathlib import Path

    from embedpipe.config import read_config_file

    confs = sorted((Path(__file__).parents[2] / "conf").glob("*.toml"))
    assert confs, "conf/ ships example configs"
    for path in confs:
        for job, section in read_config_file(path).items():
            if job == "spark":
                continue
            required = [
                arg
                for field in dataclasses.fields(JOBS[job].config_class)
                if field.metadata.get("required") and field.name not in section
                for arg in ("--" + field.name.replace("_", "-"), "x")
            ]
            args = build_parser().parse_args([job, "--config", str(path), *required])
            load_job_config(JOBS[job], args)


def test_help_documents_every_option(capsys):
    for name, job in JOBS.items():
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        text = capsys.readouterr().out
        for field in dataclasses.fields(job.config_class):
            if field.type.startswith("dict"):
                continue
            assert "--" + field.name.replace("_", "-") in text, (name, field.name)


@given(st.integers(min_value=1, max_value=10**6))
def test_integer_round_trip_from_text(value):
    config = resolve_config(TrainConfig, file_section={"input": "i", "output": "o"},
                            overrides={"dim": str(value)}, flags={})
    assert config.dim == value


def test_bool_and_list_parsing():
    from embedpipe.jobconfig import EvaluateConfig

    config = resolve_config(EvaluateConfig, file_section={"table": "t", "output": "o"},
                            overrides={"probes": "a, b,c", "lowercase": "false"}, flags={})
    assert config.probes == ["a", "b", "c"] and config.lowercase is False
    with pytest.raises(ConfigError, match="config key 'lowercase' must be true or false"):
        build_config(EvaluateConfig, {"table": "t", "output": "o", "lowercase": "maybe"},
                     from_text_keys=frozenset({"lowercase"}))
    assert parse_overrides(["a=b=c"]) == {"a": "b=c"}
    assert build_config(SparkSettings, {}).log_level == "WARN"


def test_readme_config_reference_is_current():
    """The README's reference is generated from the settings; regenerate with the command in the marker."""
    from pathlib import Path

    from embedpipe.configdoc import END, START, render_reference

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = START + readme.partition(START)[2].partition(END)[0] + END
    assert block == render_reference()
