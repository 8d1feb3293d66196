"""User errors raised inside barrier tasks: how they cross Spark's exception text back to the driver, and the
one map from the PyTorch core's parameter names to the job's config keys (no Spark needed)."""

from __future__ import annotations

from embedpipe.errors import ConfigError, SchemaError, TrainingDivergedError
from embedpipe.methods.barrier import encode_user_error, in_job_terms, job_keys, task_user_error


def _as_spark_reports(line: str) -> RuntimeError:
    """``line`` inside the text a failed barrier stage surfaces as (a Py4J error's message, abridged)."""
    return RuntimeError(
        "An error occurred while calling o201.getResult.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover from a failed "
        "barrier ResultStage. Most recent failure reason: Stage failed because barrier task ResultTask(14, 1) "
        "finished unsuccessfully.\norg.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception "
        "was thrown from the Python worker: Traceback (most recent call last):\n"
        '  File "barrier.py", line 200, in run\n'
        f"embedpipe.methods.barrier.ReplicaTaskError: {line}\n\n"
        "\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:1)\n"
    )


def test_a_task_error_comes_back_as_its_type_and_message_in_the_jobs_keys():
    raised = TrainingDivergedError("SGNS training diverged: the loss became nan; lower the initial learning rate "
                                   "(now 1e+09)", param="lr")
    error = task_user_error(_as_spark_reports(encode_user_error(raised)), job_keys("sgns"))
    assert type(error) is TrainingDivergedError and error.exit_code == 3
    assert str(error) == ("SGNS training diverged: the loss became nan; lower the initial learning rate (now 1e+09) "
                          "(set by config key 'sgns.step_size')")
    assert error.param == "lr"


def test_messages_and_attributes_survive_the_trip():
    raised = SchemaError("서울 관광 table lacks columns", missing=["vector"], present=["key", "id"])
    error = task_user_error(_as_spark_reports(encode_user_error(raised)), job_keys("softmax"))
    assert type(error) is SchemaError and str(error) == str(raised)
    assert (error.missing, error.present) == (["vector"], ["key", "id"])
    multi = ConfigError("config key 'holdout' must be >= 1\nconfig key 'lr' too")
    error = task_user_error(_as_spark_reports(encode_user_error(multi)), job_keys("softmax"))
    assert str(error) == "config key 'softmax.target_items' must be >= 1\nconfig key 'softmax.step_size' too"


def test_anything_else_is_not_a_user_error():
    assert task_user_error(ValueError("a bug"), job_keys("sgns")) is None
    assert task_user_error(_as_spark_reports("RuntimeError: Connection closed by peer"), job_keys("sgns")) is None
    assert task_user_error(_as_spark_reports("embedpipe-user-error:{not json"), job_keys("sgns")) is None
    unknown = encode_user_error(ConfigError("x")).replace('"ConfigError"', '"NoSuchError"')
    assert task_user_error(_as_spark_reports(unknown), job_keys("sgns")) is None


def test_job_keys_name_each_methods_own_settings():
    assert job_keys("sgns")["lr"] == "sgns.step_size" and job_keys("sgns")["min_lr"] == "sgns.min_step_size"
    assert job_keys("item2vec")["window"] == "item2vec.window"
    assert job_keys("softmax")["holdout"] == "softmax.target_items"
    assert job_keys("regression")["lr"] == "regression.step_size" and "holdout" not in job_keys("regression")
    assert "dim" not in job_keys("sgns") and "seed" not in job_keys("softmax")  # [train]'s own keys
    # the job's key named once; [train]'s keys and keys already in job terms are left alone
    assert in_job_terms("config key 'dim' must be >= 1", job_keys("sgns")) == "config key 'dim' must be >= 1"
    assert in_job_terms("lower config key 'lr'", job_keys("sgns"), "lr") == "lower config key 'sgns.step_size'"
