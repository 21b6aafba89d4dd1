"""The worker-environment probe's reasoning, without a cluster (the cluster test runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmaprep.config import PipelineConfig
from fmaprep.job.shared_paths import local_marks
from fmaprep.spark.workerenv import explain, last_exception_line, probe_results, required_modules


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


def test_paths_the_executors_cannot_see_make_one_line_naming_them() -> None:
    ok = {"python": "/e/bin/python", "version": "3.11.7", "missing": {}, "failed": "",
          "host": "core-1", "unseen": []}  # fmt: skip
    blind = {**ok, "host": "core-2", "unseen": ["OUTPUT"]}
    text = explain([ok, blind], {"OUTPUT": "/data/out", "INPUT": "/data/in"})
    assert text is not None and "\n" not in text
    assert text.startswith("OUTPUT /data/out: on the driver's disk only")
    assert "core-2" in text and "core-1" not in text
    assert "hdfs:// or s3://" in text
    assert explain([ok, ok], {"OUTPUT": "/data/out"}) is None


def test_the_probe_reports_the_marks_a_task_cannot_see(spark: Any, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.write_text("")
    results = probe_results(spark.sparkContext, ["numpy"], "soxr", 2,
                            {"INPUT": str(tmp_path / "absent"), "OUTPUT": str(seen)})  # fmt: skip
    assert [r["unseen"] for r in results] == [["INPUT"], ["INPUT"]]


def test_local_marks_put_a_unique_file_beside_output_and_remove_it(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    out = tmp_path / "new" / "out"  # neither exists: the mark goes in the nearest parent
    with local_marks(f"file://{tmp_path}/corpus/*/*.mp3", f"file://{out}") as marks:
        assert marks["INPUT"] == (f"{tmp_path}/corpus/*/*.mp3", f"{tmp_path}/corpus")
        given, mark = marks["OUTPUT"]
        assert given == str(out) and Path(mark).parent == tmp_path and Path(mark).exists()
    assert not Path(mark).exists()
    with local_marks("s3a://b/in", "hdfs://nn/out") as marks:
        assert marks == {}


def test_the_hint_points_to_the_docs_section_that_says_how_to_ship_the_environment() -> None:
    """The set-up left the README for the docs site: the hint names that page and a section it
    has, and the page gives the same two spark-submit settings the hint does."""
    from fmaprep.spark import workerenv

    page = Path(__file__).resolve().parents[2] / workerenv.DOCS_PAGE
    text = page.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert any(h[3:].startswith(workerenv.DOCS_SECTION) for h in headings)
    assert "README" not in workerenv.SHIP_HINT and workerenv.DOCS_PAGE in workerenv.SHIP_HINT
    for setting in ("#environment", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"):
        assert setting in workerenv.SHIP_HINT and setting in text
