"""The worker-environment probe's reasoning, without a cluster (the cluster test runs it)."""

from __future__ import annotations

from fmaprep.config import PipelineConfig
from fmaprep.spark.workerenv import explain, last_exception_line, required_modules


def test_required_modules_follow_the_pipeline_config() -> None:
    io = ["requests", "boto3", "pyarrow"]  # the tasks' own store clients and parquet writer
    assert required_modules(PipelineConfig()) == ["fmaprep", "numpy", "scipy", *io, "soundfile",
                                                  "soxr"]  # fmt: skip
    cfg = PipelineConfig(decoder="pydub", resampler="resampy")
    want = ["fmaprep", "numpy", "scipy", *io, "pydub", "imageio_ffmpeg", "resampy"]
    assert required_modules(cfg) == want


def test_missing_modules_make_one_line_that_says_what_to_do() -> None:
    results = [
        {"python": "/w/python3", "version": "3.11.2", "missing": {}, "failed": ""},
        {
            "python": "/w/python3",
            "version": "3.11.2",
            "missing": {
                "fmaprep": "ModuleNotFoundError: No module named 'fmaprep'",
                "numpy": "ModuleNotFoundError: No module named 'numpy'",
            },
            "failed": "",
        },
    ]
    text = explain(results)
    assert text is not None
    assert "\n" not in text
    assert text.startswith("workers cannot import fmaprep, numpy [")
    assert "--archives env.tar.gz#environment" in text
    assert "/w/python3 (3.11.2)" in text


def test_healthy_workers_explain_nothing_and_broken_resamplers_are_named() -> None:
    ok = {"python": "/e/bin/python", "version": "3.11.7", "missing": {}, "failed": ""}
    assert explain([ok, ok]) is None
    broken = {**ok, "failed": "resampy failed: RuntimeError: cannot cache function"}
    assert "resampy failed" in (explain([ok, broken]) or "")


def test_last_exception_line_finds_the_cause_in_a_java_trace() -> None:
    trace = (
        "An error occurred while calling o1.collect.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: ...\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(...)\n"
        'Caused by: java.io.IOException: Cannot run program "./environment/bin/python"\n'
        "java.io.IOException: error=2, No such file or directory\n"
        "\tat java.base/java.lang.ProcessImpl.forkAndExec(Native Method)\n"
    )
    assert last_exception_line(trace) == "java.io.IOException: error=2, No such file or directory"
    assert last_exception_line("something odd\nmore") == "something odd"
