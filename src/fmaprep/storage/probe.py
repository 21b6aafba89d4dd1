"""The S3 and Spark steps of ``scripts/check-storage.sh`` (the HDFS steps use the ``hdfs`` tool).

``python -m fmaprep.storage.probe s3 URI`` and ``python -m fmaprep.storage.probe spark URI...``
print one tab-separated result per check: ``check<TAB>uri<TAB>status<TAB>message<TAB>fix`` with
status ``pass``, ``fail`` or ``skip``; the shell script formats them. Both use the settings of
:mod:`fmaprep.storage.s3_settings`, the same that the job uses. No secret is ever printed.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from fmaprep.redaction import redact_text, strip_signed_query
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.s3_settings import (
    S3Settings,
    StorageConfError,
    hdfs_spark_conf,
    is_s3_uri,
    load_s3_settings,
)
from fmaprep.storage.stores import Store
from fmaprep.storage.webhdfs import webhdfs_base

FIX_LOCAL = "start the local services: scripts/local-services.sh up"


_OUT = sys.stdout  # results only; main() points it at a copy of fd 1 before the JVM starts


def emit(check: str, uri: str, status: str, message: str, fix: str = "") -> None:
    clean = [s.replace("\t", " ").replace("\n", " ").strip() for s in (message, fix)]
    print("\t".join([check, uri, status, *clean]), file=_OUT, flush=True)


def probe_name() -> str:
    # No leading "_" or ".": Hadoop's input formats skip such names as hidden.
    return f"fmaprep_probe_{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of an s3/s3a URI; the prefix ends with ``/`` unless empty."""
    parts = urlsplit(uri)
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parts.netloc, prefix


def _key_hint(environ: dict[str, str] | os._Environ[str]) -> str:
    key = environ.get("AWS_ACCESS_KEY_ID", "")
    return f"access key {key[:4]}... from AWS_ACCESS_KEY_ID" if key else "the default AWS chain"


# ------------------------------------------------------------------------------------------ S3
def s3_client(settings: S3Settings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        s3={"addressing_style": "path" if settings.path_style_access else "auto"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=5,
        read_timeout=20,
        # Only the checksums S3 requires: third-party S3 servers refuse the newer default headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=settings.endpoint, config=config)


def check_s3(uri: str) -> bool:
    """Run the S3 checks for one URI in order; stop at the first failure. True when all pass."""
    try:
        import boto3
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )
    except ImportError:
        emit("tools", uri, "fail", "python has no boto3", "run scripts/install.sh (boto3 in .venv)")
        return False
    try:
        settings = load_s3_settings()
    except StorageConfError as exc:
        emit("s3.config", uri, "fail", f"bad storage settings: {exc}", "fix conf/storage.toml")
        return False
    bucket, prefix = split_s3(uri)
    if not bucket:
        emit("s3.uri", uri, "fail", "no bucket in the URI", "write s3a://BUCKET/prefix/")
        return False
    emit("tools", uri, "pass", f"python with boto3 {boto3.__version__} ({sys.executable})")

    # 1. endpoint reachable: any HTTP answer will do.
    endpoint = settings.endpoint or f"https://s3.{settings.region}.amazonaws.com"
    host = urlsplit(endpoint)
    port = host.port or (443 if host.scheme == "https" else 80)
    try:
        with socket.create_connection((host.hostname or "", port), timeout=5):
            pass
    except OSError as exc:
        where = (
            "FMAPREP_S3_ENDPOINT / [s3] endpoint in conf/storage.toml"
            if settings.endpoint
            else "the network route to AWS"
        )
        emit(
            "s3.endpoint",
            uri,
            "fail",
            f"S3 endpoint {endpoint} not reachable ({exc.strerror or exc})",
            f"start the S3 server (locally: scripts/local-services.sh up) or correct {where}",
        )
        return False
    emit("s3.endpoint", uri, "pass", f"S3 endpoint {endpoint} answers (region {settings.region})")

    client = s3_client(settings)
    # 2. credentials valid and 3. bucket exists: one list call tells them apart.
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except NoCredentialsError:
        emit(
            "s3.credentials",
            uri,
            "fail",
            "no AWS credentials found",
            'export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (locally: eval "$(scripts/local-'
            'services.sh env)") or attach an instance role',
        )
        return False
    except EndpointConnectionError as exc:
        emit("s3.endpoint", uri, "fail", f"S3 endpoint stopped answering: {exc}", FIX_LOCAL)
        return False
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        hint = _key_hint(os.environ)
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}:
            why = {
                "InvalidAccessKeyId": "the server does not know the access key",
                "SignatureDoesNotMatch": "the secret key does not match the access key",
            }.get(code, "the session token is invalid or expired")
            emit(
                "s3.credentials",
                uri,
                "fail",
                f"wrong S3 credentials ({code}): {why} ({hint})",
                "export the right AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (locally: eval "
                '"$(scripts/local-services.sh env)")',
            )
            return False
        emit("s3.credentials", uri, "pass", f"credentials accepted ({hint})")
        if code in {"NoSuchBucket", "404"}:
            emit(
                "s3.bucket",
                uri,
                "fail",
                f"bucket {bucket} does not exist at {endpoint}",
                f"create it (aws s3 mb s3://{bucket}; locally: FMAPREP_S3_BUCKET={bucket} "
                "scripts/local-services.sh up) or correct the bucket name",
            )
        elif code in {"AccessDenied", "403", "AllAccessDisabled"}:
            emit(
                "s3.bucket",
                uri,
                "fail",
                f"access denied listing s3://{bucket}/{prefix} ({code})",
                f"grant s3:ListBucket on arn:aws:s3:::{bucket} to these credentials",
            )
        else:
            emit("s3.bucket", uri, "fail", f"listing s3://{bucket}/{prefix}: {code} ({status})", "")
        return False
    except BotoCoreError as exc:
        emit("s3.endpoint", uri, "fail", f"S3 request failed: {exc}", FIX_LOCAL)
        return False
    emit("s3.credentials", uri, "pass", f"credentials accepted ({_key_hint(os.environ)})")
    emit("s3.bucket", uri, "pass", f"bucket {bucket} exists and lists")

    return _s3_roundtrip(client, uri, bucket, prefix)


def _s3_roundtrip(client: Any, uri: str, bucket: str, prefix: str) -> bool:
    """Put / get / list / delete a probe under the prefix (no ACL header is ever sent)."""
    from botocore.exceptions import BotoCoreError, ClientError

    key = prefix + probe_name()
    payload = f"fmaprep storage probe {time.time()}".encode()
    step = "put"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=payload)
        step = "get"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if body != payload:
            raise ValueError("read back different bytes")
        step = "list"
        listed = client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        if key not in {item["Key"] for item in listed}:
            raise ValueError("probe not listed")
        step = "delete"
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError, ValueError) as exc:
        code = (
            str(exc.response.get("Error", {}).get("Code", ""))
            if isinstance(exc, ClientError)
            else ""
        )
        action = {"put": "PutObject", "get": "GetObject", "list": "ListBucket"}.get(
            step, "DeleteObject"
        )
        emit(
            "s3.roundtrip",
            uri,
            "fail",
            f"{step} of probe s3://{bucket}/{key} failed: {code or exc}",
            f"grant s3:{action} on arn:aws:s3:::{bucket}/{prefix}* (writes send no ACL, so "
            "'bucket owner enforced' is fine)",
        )
        return False
    emit(
        "s3.roundtrip", uri, "pass", f"put/get/list/delete of a probe under s3://{bucket}/{prefix}"
    )
    return True


# --------------------------------------------------------------------------------------- Spark
def _java_cause(exc: BaseException) -> str:
    """The innermost Java exception message of a Py4J error, on one line."""
    java = getattr(exc, "java_exception", None)
    if java is not None and "PythonException" in str(java.getClass().getName()):
        # a Python task's error: its last traceback line says what happened
        lines = [x for x in str(java.getMessage() or "").splitlines() if x.strip()]
        return lines[-1].strip()[:400] if lines else "a Python task failed"
    if java is None:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    cause = java
    while cause.getCause() is not None:
        cause = cause.getCause()
    text = str(cause.toString())
    return text.splitlines()[0][:400]


@contextmanager
def _quiet_stderr(log_path: str) -> Iterator[None]:
    """Send the JVM's and Ivy's chatter (fds 1 and 2) to a log file, restore afterwards."""
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


def check_spark(uris: list[str], log_path: str) -> bool:
    """One local[1] Spark session set up as the job's: per URI the driver lists it as the job
    plans (one listing), then a Spark task reads one input and writes/reads/deletes one probe
    with the job's own store clients (boto3 for S3, WebHDFS for HDFS), as the job's tasks do."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        for uri in uris:
            emit("spark", uri, "fail", "python has no pyspark", "run scripts/install.sh")
        return False
    try:
        conf = hdfs_spark_conf()  # all the job gives Spark: the JVM never touches S3
    except StorageConfError as exc:
        for uri in uris:
            emit("spark", uri, "fail", f"bad storage settings: {exc}", "fix FMAPREP_HDFS_URI")
        return False
    conf.update({"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "1"})
    # the task runs this Python, as a local job's tasks do (fmaprep.spark.session)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    conf["spark.pyspark.python"] = sys.executable
    builder = SparkSession.builder.master("local[1]").appName("fmaprep-check-storage")
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        with _quiet_stderr(log_path):
            spark = builder.getOrCreate()
    except Exception as exc:
        for uri in uris:
            emit("spark", uri, "fail", f"Spark did not start: {_java_cause(exc)} (log {log_path})",
                 "check Java (scripts/install.sh)")  # fmt: skip
        return False
    all_ok = True
    try:
        sc = spark.sparkContext
        try:
            settings = StoreSettings.from_hadoop_conf(sc._jsc.hadoopConfiguration())
        except StorageConfError as exc:
            settings = None
            bad_settings = str(exc)
        for uri in uris:
            if settings is None:
                ok, message, fix = False, f"bad storage settings: {bad_settings}", FIX_SETTINGS
            else:
                with _quiet_stderr(log_path):
                    ok, message, fix = _spark_one(sc, settings, uri)
            emit("spark", uri, "pass" if ok else "fail", message, fix)
            all_ok = all_ok and ok
    finally:
        with _quiet_stderr(log_path):
            spark.stop()
    return all_ok


FIX_SETTINGS = (
    "S3: conf/storage.toml and FMAPREP_S3_* (the tasks use boto3 with them); HDFS: the "
    "NameNode's HTTP address (dfs.namenode.http-address or FMAPREP_WEBHDFS_URL) and "
    "HADOOP_USER_NAME"
)


def _spark_one(sc: Any, settings: StoreSettings, uri: str) -> tuple[bool, str, str]:
    from fmaprep.config import AUDIO_EXTENSIONS
    from fmaprep.storage.listing import list_inputs

    uri = settings.full_uri(uri)
    try:
        inputs = list_inputs(uri, AUDIO_EXTENSIONS, settings)  # the job's planning listing
    except FileNotFoundError:
        inputs = []  # an OUTPUT that does not exist yet
    except Exception as exc:  # whatever the client says is the answer
        text = redact_text(f"{type(exc).__name__}: {exc}")
        return (
            False,
            f"the driver could not list {uri} via {_client_address(uri, settings)}: {text}",
            FIX_SETTINGS,
        )
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
    if is_s3_uri(uri):
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
    store = open_store(uri, settings)
    step = "open the store"
    try:
        read_note = "no input file to read"
        if sample is not None:
            step = f"read {sample}"
            with store.open_read(sample) as stream:
                got = len(stream.read(PROBE_READ))
            read_note = f"read {got} bytes of {sample}"
        base = _existing_dir(store, uri)
        probe = f"{base}/{name}"
        payload = f"fmaprep spark probe {time.time()}".encode()
        step = f"write probe {probe}"
        with store.open_write(probe) as writer:
            writer.write(payload)
            writer.commit()
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


PROBE_READ = 64 * 1024


def _existing_dir(store: Store, uri: str) -> str:
    """Where a probe may go without creating anything: ``uri`` on S3 (no directories), else
    ``uri`` or its nearest existing parent (a file's own directory)."""
    uri = uri.rstrip("/")
    if store.kind == "s3":
        return uri
    while True:
        try:
            if store.stat(uri) is None:
                parent = uri.rsplit("/", 1)[0]
                if parent == uri or parent.endswith(":/") or parent.endswith(":"):
                    return uri
                uri = parent
                continue
        except IsADirectoryError:
            return uri
        return uri.rsplit("/", 1)[0]  # a file: its directory


def main(argv: list[str] | None = None) -> int:
    global _OUT  # noqa: PLW0603 - one results stream per process
    args = sys.argv[1:] if argv is None else argv
    _OUT = os.fdopen(os.dup(1), "w", encoding="utf-8")
    if len(args) >= 2 and args[0] == "s3":
        return 0 if all([check_s3(uri) for uri in args[1:]]) else 1
    if len(args) >= 3 and args[0] == "spark":
        log_path, uris = args[1], args[2:]
        bad = [u for u in uris if not (is_s3_uri(u) or "://" in u)]
        if bad:
            print(f"storage_probe: give URIs with a scheme, got {bad}", file=sys.stderr)
            return 2
        return 0 if check_spark(uris, log_path) else 1
    print(
        "usage: python -m fmaprep.storage.probe s3 URI... | spark LOGFILE URI...",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
