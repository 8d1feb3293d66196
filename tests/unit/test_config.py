"""Config loading: layers, types, constraints and the messages that name the key."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedpipe.cli import JOBS, build_parser, load_job_config, parse_arguments
from embedpipe.config import DEFAULT_SEED, build_config, config_to_dict, parse_overrides, resolve_config
from embedpipe.errors import ConfigError
from embedpipe.jobconfig import SparkSettings, TrainConfig
from embedpipe.methods.settings import (
    METHOD_SETTINGS,
    ALSSettings,
    SGNSSettings,
    Word2VecSettings,
    setting_names,
)


def _load(argv: list[str], job: str = "train"):
    args = parse_arguments(build_parser(), [job, *argv])
    return load_job_config(JOBS[job], args)


def test_defaults_then_file_then_set_then_flags(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[train]\ninput = "in"\noutput = "out"\ndim = 10\nseed = 3\n'
                    '[train.word2vec]\nwindow = 3\nepochs = 2\n'
                    '[spark]\nmaster = "local[1]"\n')
    config, spark = _load(["--config", str(conf), "--set", "word2vec.window=7", "--set", "dim=20", "--dim", "30"])
    assert (config.input, config.dim, config.seed) == ("in", 30, 3)
    assert (config.settings.window, config.settings.epochs) == (7, 2)
    assert config.settings.step_size == Word2VecSettings().step_size
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
            "config key 'method' must be one of word2vec, pca, sgns, fasttext, item2vec, softmax, regression, als, "
            "popularity, got 'magic'",
        ),
        (["--method", "sgns", "--set", "sgns.step_size=0"], "config key 'sgns.step_size' must be > 0.0, got 0.0"),
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
            if field.type.startswith("dict") or field.metadata.get("nested"):
                continue
            assert "--" + field.name.replace("_", "-") in text, (name, field.name)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for method in METHOD_SETTINGS:  # each method's own keys, set with --set <method>.<key>
        assert f"  {method}: {', '.join(setting_names(method)) or '(none)'}" in text


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


def test_config_reference_is_current():
    """docs/configuration.md's reference is generated from the settings; regenerate with its marker's command."""
    from pathlib import Path

    from embedpipe.configdoc import DOC_PATH, END, START, render_reference

    text = (Path(__file__).parents[2] / DOC_PATH).read_text(encoding="utf-8")
    block = START + text.partition(START)[2].partition(END)[0] + END
    assert block == render_reference()
    for method in METHOD_SETTINGS:
        assert f"#### `[train.{method}]`" in block


# ----------------------------------------------------------------------------- train: settings per method


def _train(*argv: str) -> TrainConfig:
    return _load(["--input", "i", "--output", "o", *argv])[0]


def _train_error(*argv: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _train(*argv)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_method_section_in_a_file_and_set(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[train]\nmethod = "sgns"\n[train.sgns]\nwindow = 8\nnegative = 10\n'
                    '[train.als]\nreg = 0.5\nbogus = 1\n[train.word2vec]\npartitions = 4\n')
    config = _train("--config", str(conf), "--set", "sgns.epochs=2")
    assert isinstance(config.settings, SGNSSettings)
    assert (config.settings.window, config.settings.negative, config.settings.epochs) == (8, 10, 2)
    assert config.settings.step_size == 0.05  # the method's own default
    # other methods' tables are allowed in a shared file, and ignored
    assert config.to_dict()["sgns"]["window"] == 8 and "als" not in config.to_dict()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "sgns", "--set", "sgns.partitions=3"],
         "config key 'sgns.partitions' is not a setting of method sgns (its keys: window, negative, sample, "
         "step_size, min_step_size, epochs, warm_epochs, warm_step_size, deterministic, export_output_vectors)"),
        (["--method", "sgns", "--set", "sgns.warm_step_size=0.00001"],
         "config key 'sgns.min_step_size' must be <= sgns.warm_step_size (1e-05), got 0.0001"),
        (["--method", "item2vec", "--set", "item2vec.warm_epochs=0"],
         "config key 'item2vec.warm_epochs' must be"),
        (["--method", "popularity", "--set", "popularity.window=3"],
         "config key 'popularity.window' is not a setting of method popularity (its keys: none)"),
        (["--method", "sgns", "--set", "als.reg=0.3"],
         "config key 'als.reg' is a setting of method als, but the method is sgns"),
        (["--method", "sgns", "--set", "window=8"], "config key 'window' moved: use 'sgns.window' ([train.sgns])"),
        (["--method", "sgns", "--epochs", "3"], "config key 'epochs' moved: use 'sgns.epochs' ([train.sgns])"),
        (["--method", "sgns", "--no-deterministic"],
         "config key 'deterministic' moved: use 'sgns.deterministic' ([train.sgns])"),
        (["--method", "item2vec", "--set", "item_window=8"],
         "config key 'item_window' moved: use 'item2vec.window' ([train.item2vec])"),
        (["--method", "softmax", "--set", "bag_epochs=3"],
         "config key 'bag_epochs' moved: use 'softmax.epochs' ([train.softmax])"),
        (["--method", "regression", "--set", "bag_step_size=0.1"],
         "config key 'bag_step_size' moved: use 'regression.step_size' ([train.regression])"),
        (["--method", "als", "--set", "als_reg=0.3"], "config key 'als_reg' moved: use 'als.reg' ([train.als])"),
        (["--method", "pca", "--pca-solver", "svd"], "config key 'pca_solver' moved: use 'pca.solver' ([train.pca])"),
        (["--method", "sgns", "--set", "min_lr=0.001"],
         "config key 'min_lr' moved: use 'sgns.min_step_size' ([train.sgns])"),
        (["--method", "sgns", "--set", "export_output_vectors=x"],
         "config key 'export_output_vectors' moved: use 'sgns.export_output_vectors' ([train.sgns])"),
        (["--method", "als", "--set", "window=3"],
         "config key 'window' moved to the method sections (word2vec.window, sgns.window, fasttext.window, "
         "item2vec.window); method als has no such setting"),
        (["--method", "sgns", "--set", "sgns.min_lr=0.001"],
         "config key 'sgns.min_lr' moved: use 'sgns.min_step_size'"),
        (["--method", "sgns", "--set", "step_cap=line"], "config key 'step_cap' was removed (see docs/decisions.md)"),
        (["--method", "sgns", "--set", "sgns.max_exp=0"],
         "config key 'sgns.max_exp' was removed (see docs/decisions.md)"),
        (["--method", "sgns", "--set", "batch_size=256"],
         "config key 'batch_size' was removed (see docs/decisions.md)"),
        (["--method", "softmax", "--set", "batch_size=256"],
         "config key 'batch_size' moved: use 'softmax.batch_size' ([train.softmax])"),
        (["--method", "item2vec", "--set", "item_sample=0.001"],
         "config key 'item_sample' was removed (see docs/decisions.md)"),
        (["--method", "softmax", "--set", "output_bias=true"],
         "config key 'output_bias' was removed (see docs/decisions.md)"),
        (["--processes", "2"],
         "config key 'processes' is not used by method word2vec (only by sgns, fasttext, item2vec, softmax, "
         "regression)"),
        (["--method", "als", "--device", "cpu"], "config key 'device' is not used by method als"),
        (["--method", "softmax", "--checkpoint-dir", "c"],
         "config key 'checkpoint_dir' is not used by method softmax (only by sgns, fasttext, item2vec)"),
        (["--method", "sgns", "--resume"], "config key 'resume' needs checkpoint_dir"),
        (["--method", "sgns", "--set", "sgns.min_step_size=0.1", "--set", "sgns.step_size=0.01"],
         "config key 'sgns.min_step_size' must be <= sgns.step_size (0.01), got 0.1"),
        (["--method", "sgns", "--set", "sgns.window=0"], "config key 'sgns.window' must be >= 1, got 0"),
        (["--method", "softmax", "--set", "softmax.combiner=max"],
         "config key 'softmax.combiner' must be one of mean, sqrtn, sum, got 'max'"),
        (["--method", "pca", "--set", "pca.doc_output=o"], "config key 'pca.doc_output' must differ from 'output'"),
        (["--set", "settings=x"], "unknown config key 'settings'"),
    ],
)
def test_train_keys_outside_the_methods_settings_are_refused(argv, message):
    assert _train_error(*argv).startswith(message)


def test_old_flat_keys_in_a_file_say_the_new_name(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[train]\nmethod = "word2vec"\nwindow = 5\n')
    assert _train_error("--config", str(conf)) == "config key 'window' moved: use 'word2vec.window' ([train.word2vec])"
    conf.write_text('[train]\nmethod = "sgns"\n[train.sgns]\nstep_cap = "row"\n')
    assert _train_error("--config", str(conf)) == "config key 'sgns.step_cap' was removed (see docs/decisions.md)"
    conf.write_text("[train]\nsgns = 3\n")
    assert _train_error("--config", str(conf)).startswith("config key 'sgns' must be a [train.sgns] section")


def test_an_unknown_train_flag_is_still_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        _train("--bogus", "1")
    assert "unrecognized arguments: --bogus 1" in capsys.readouterr().err


def test_the_log_and_manifest_record_only_the_chosen_methods_settings():
    config = TrainConfig(input="i", output="o", method="word2vec")
    assert config_to_dict(config) == {"input": "i", "output": "o", "method": "word2vec", "dim": 100, "seed": 42,
                                      "word2vec": dataclasses.asdict(Word2VecSettings())}
    sgns = TrainConfig(input="i", output="o", method="sgns", processes=2)
    assert set(config_to_dict(sgns)) == {"input", "output", "method", "dim", "seed", "device", "processes",
                                         "averages_per_epoch", "threads", "checkpoint_dir", "resume", "init_from",
                                         "init_from_missing", "sgns"}
    # the manifest's params: no paths, no other method's keys
    export = TrainConfig(input="i", output="o", method="sgns", settings={"export_output_vectors": "ctx"})
    assert export.recorded_params() == {
        "dim": 100, "seed": 42, "device": "auto", "processes": 1, "averages_per_epoch": 10, "threads": None,
        "window": 5, "negative": 5, "sample": 1e-3, "step_size": 0.05, "min_step_size": 1e-4, "epochs": 5,
        "warm_epochs": 1, "warm_step_size": 0.002, "deterministic": True,
    }


def test_python_api_takes_the_settings_class_or_a_dict():
    by_class = TrainConfig(input="i", output="o", method="sgns", dim=50, seed=7, settings=SGNSSettings(epochs=9))
    by_dict = TrainConfig(input="i", output="o", method="sgns", dim=50, seed=7, settings={"epochs": 9})
    assert by_class == by_dict and by_class.settings.epochs == 9
    assert TrainConfig(input="i", output="o", method="als").settings == ALSSettings()
    with pytest.raises(ConfigError, match="the settings of method word2vec must be Word2VecSettings or a dict"):
        TrainConfig(input="i", output="o", method="word2vec", settings=SGNSSettings())
    with pytest.raises(ConfigError, match="config key 'sgns.window' must be >= 1, got 0"):
        TrainConfig(input="i", output="o", method="sgns", settings=SGNSSettings(window=0))
    with pytest.raises(ConfigError, match="config key 'sgns.partitions' is not a setting of method sgns"):
        TrainConfig(input="i", output="o", method="sgns", settings={"partitions": 2})
    with pytest.raises(ConfigError, match="config key 'processes' is not used by method pca"):
        TrainConfig(input="i", output="o", method="pca", processes=2)


def test_each_default_is_declared_once():
    """One seed default for the job and the PyTorch core; no method re-declares a [train] key."""
    pytest.importorskip("torch")
    from embedpipe.torchtrain.params import SGNSParams

    assert TrainConfig(input="i", output="o").seed == SGNSParams().seed == DEFAULT_SEED == 42
    common = {f.name for f in dataclasses.fields(TrainConfig)}
    for method in METHOD_SETTINGS:
        assert not set(setting_names(method)) & common, method


_SGNS_INTEGERS = st.sampled_from([("window", 1, 50), ("negative", 1, 30), ("epochs", 1, 100)])


@given(_SGNS_INTEGERS, st.data(), st.sampled_from(["", " "]))
def test_set_parses_any_valid_method_value(key, data, space):
    name, low, high = key
    value = data.draw(st.integers(min_value=low, max_value=high))
    config = _train("--method", "sgns", "--set", f"sgns.{name}{space}={space}{value}")
    assert getattr(config.settings, name) == value


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12))
def test_set_of_a_key_sgns_does_not_have_names_it(name):
    if name in setting_names("sgns"):
        return
    assert f"config key 'sgns.{name}'" in _train_error("--method", "sgns", "--set", f"sgns.{name}=1")
