"""The Spark step of ``scripts/check-storage.sh``: the job's own path, on one ``local[1]``
session built as the job builds its sessions.

``python -m fmaprep.job.storage_check LOGFILE URI...`` prints one tab-separated result per URI
(see :mod:`fmaprep.storage.probe`). Per URI the driver lists it as the job plans (one listing,
the hidden-name rule), then a Spark task reads one input and writes (streamed and committed, as
a part is), reads back and deletes a probe with the job's store clients (boto3 for S3, WebHDFS
for HDFS). The JVM never touches S3, as in the job. JVM output goes to LOGFILE.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fmaprep.config import AUDIO_EXTENSIONS
from fmaprep.redaction import redact_text, strip_signed_query
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.listing import list_inputs
from fmaprep.storage.probe import emit, probe_name, results_to_stdout
from fmaprep.storage.s3_settings import StorageConfError, hdfs_spark_conf
from fmaprep.storage.stores import Store
from fmaprep.storage.uris import is_s3
from fmaprep.storage.webhdfs import webhdfs_base

FIX_SETTINGS = (
    "S3: conf/storage.toml and FMAPREP_S3_* (the tasks use boto3 with them); HDFS: the "
    "NameNode's HTTP address (dfs.namenode.http-address or FMAPREP_WEBHDFS_URL) and "
    "HADOOP_USER_NAME"
)
PROBE_READ = 64 * 1024  # bytes of the sample input a task reads


def check_spark(uris: list[str], log_path: str) -> bool:
    """Emit one ``spark`` result per URI; True when all passed."""
    try:
        from fmaprep.spark.session import build_session, stop_session

        conf = {**hdfs_spark_conf(), "spark.sql.shuffle.partitions": "1"}  # the job's storage conf
    except ImportError:
        for uri in uris:
            emit("spark", uri, "fail", "python has no pyspark", "run scripts/install.sh")
        return False
    except StorageConfError as exc:
        for uri in uris:
            emit("spark", uri, "fail", f"bad storage settings: {exc}", "fix FMAPREP_HDFS_URI")
        return False
    try:
        with _quiet_stderr(log_path):
            session = build_session("local[1]", app_name="fmaprep-check-storage", conf=conf)
    except Exception as exc:
        for uri in uris:
            emit("spark", uri, "fail", f"Spark did not start: {_java_cause(exc)} (log {log_path})",
                 "check Java (scripts/install.sh)")  # fmt: skip
        return False
    try:
        sc = session.sparkContext
        try:
            settings = StoreSettings.from_hadoop_conf(sc._jsc.hadoopConfiguration())
        except StorageConfError as exc:
            for uri in uris:
                emit("spark", uri, "fail", f"bad storage settings: {exc}", FIX_SETTINGS)
            return False
        all_ok = True
        for uri in uris:
            with _quiet_stderr(log_path):
                ok, message, fix = _spark_one(sc, settings, uri)
            emit("spark", uri, "pass" if ok else "fail", message, fix)
            all_ok = all_ok and ok
        return all_ok
    finally:
        with _quiet_stderr(log_path):
            stop_session(session)


def _spark_one(sc: Any, settings: StoreSettings, uri: str) -> tuple[bool, str, str]:
    uri = settings.full_uri(uri)
    try:
        inputs = list_inputs(uri, AUDIO_EXTENSIONS, settings)  # the job's planning listing
    except FileNotFoundError:
        inputs = []  # an OUTPUT that does not exist yet
    except Exception as exc:  # whatever the client says is the answer
        text = redact_text(f"{type(exc).__name__}: {exc}")
        where = _client_address(uri, settings)
        return False, f"the driver could not list {uri} via {where}: {text}", FIX_SETTINGS
    sample = inputs[0].source if inputs else None
    name = probe_name()
    try:
        [result] = sc.parallelize([0], 1).map(
            lambda _: probe_in_task(uri, sample, settings, name)
        ).collect()  # fmt: skip
    except Exception as exc:
        return False, f"the Spark task failed: {_java_cause(exc)}", "read the log's last lines"
    ok, message = result
    if not ok:
        return False, message, FIX_SETTINGS
    listed = f"listed {len(inputs)} input file{'s' * (len(inputs) != 1)}"
    return True, f"{listed}; {message} (local[1])", ""


def _client_address(uri: str, settings: StoreSettings) -> str:
    """Which client the job uses for ``uri`` and where it goes (no credentials)."""
    if is_s3(uri):
        endpoint = settings.s3.endpoint if settings.s3 else None
        return f"boto3 at {strip_signed_query(endpoint)}" if endpoint else "boto3 at AWS"
    if uri.startswith("hdfs:"):
        return f"WebHDFS at {strip_signed_query(settings.webhdfs or webhdfs_base(uri))}"
    return "the local filesystem"


def probe_in_task(
    uri: str, sample: str | None, settings: StoreSettings, name: str
) -> tuple[bool, str]:
    """Run in a Spark task: read ``sample`` as a task reads its inputs, and write (streamed and
    committed, as a part is), read back and delete a probe where the job would write."""
    step = "open the store"
    try:
        store = open_store(uri, settings)
        read_note = "no input file to read"
        if sample is not None:
            step = f"read {sample}"
            with store.open_read(sample) as stream:
                got = len(stream.read(PROBE_READ))
            read_note = f"read {got} bytes of {sample}"
        probe = f"{_existing_dir(store, uri)}/{name}"
        payload = f"fmaprep spark probe {time.time()}".encode()
        step = f"write probe {probe}"
        store.open_write(probe).publish(payload)  # streamed and committed, as a part is
        step = f"read probe {probe}"
        back = store.read_bytes(probe)
        if back != payload:
            return False, f"probe {probe} read back {len(back)} bytes, not what was written"
        step = f"delete probe {probe}"
        store.delete([probe])
    except Exception as exc:  # the task's answer, whatever the client raised
        return False, redact_text(f"a Spark task could not {step}: {type(exc).__name__}: {exc}")
    client = type(store).__name__
    return True, f"{read_note}; wrote/read/deleted a probe via {client} in a Spark task"


def _existing_dir(store: Store, uri: str) -> str:
    """Where a probe may go without creating anything: ``uri`` itself on S3 (no directories);
    elsewhere ``uri`` if it is a directory, a file's own directory, or the nearest existing
    parent of a path that is not there yet (where the job would create it)."""
    uri = uri.rstrip("/")
    if store.kind == "s3":
        return uri
    while True:
        try:
            found = store.stat(uri)
        except IsADirectoryError:
            return uri
        parent = uri.rsplit("/", 1)[0]
        if found is not None:
            return parent  # a file: its directory
        if parent == uri or parent.endswith((":", ":/")):
            return uri  # nothing exists up to the root
        uri = parent


def _java_cause(exc: BaseException) -> str:
    """One line saying why a Py4J call failed: a Python task's last traceback line, else the
    innermost Java exception's message."""
    java = getattr(exc, "java_exception", None)
    if java is None:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "PythonException" in str(java.getClass().getName()):
        lines = [x for x in str(java.getMessage() or "").splitlines() if x.strip()]
        return lines[-1].strip()[:400] if lines else "a Python task failed"
    cause = java
    while cause.getCause() is not None:
        cause = cause.getCause()
    return str(cause.toString()).splitlines()[0][:400]


@contextmanager
def _quiet_stderr(log_path: str) -> Iterator[None]:
    """Send the JVM's chatter (fds 1 and 2) to a log file, restore afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m fmaprep.job.storage_check LOGFILE URI...", file=sys.stderr)
        return 2
    log_path, uris = args[0], args[1:]
    bad = [u for u in uris if "://" not in u]
    if bad:
        print(f"storage_check: give URIs with a scheme, got {bad}", file=sys.stderr)
        return 2
    results_to_stdout()
    return 0 if check_spark(uris, log_path) else 1


if __name__ == "__main__":
    raise SystemExit(main())
