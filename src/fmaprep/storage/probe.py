"""The S3 step of ``scripts/check-storage.sh`` (the HDFS steps use the ``hdfs`` tool, the Spark
step is :mod:`fmaprep.job.storage_check`).

``python -m fmaprep.storage.probe s3 URI...`` prints one tab-separated result per check:
``check<TAB>uri<TAB>status<TAB>message<TAB>fix`` with status ``pass``, ``fail`` or ``skip``;
the shell script formats them. It uses the settings of :mod:`fmaprep.storage.s3_settings`, the
same that the job uses. No secret is ever printed.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from fmaprep.storage.s3_settings import (
    StorageConfError,
    load_s3_settings,
)
from fmaprep.storage.s3client import new_s3_client, s3_error_code
from fmaprep.storage.stores import _dir_prefix
from fmaprep.storage.uris import split_uri

FIX_LOCAL = "start the local services: scripts/local-services.sh up"


_OUT = sys.stdout  # results only; main() points it at a copy of fd 1 before the JVM starts


def emit(check: str, uri: str, status: str, message: str, fix: str = "") -> None:
    clean = [s.replace("\t", " ").replace("\n", " ").strip() for s in (message, fix)]
    print("\t".join([check, uri, status, *clean]), file=_OUT, flush=True)


def probe_name() -> str:
    # No leading "_" or ".": Hadoop's input formats skip such names as hidden.
    return f"fmaprep_probe_{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _key_hint(environ: dict[str, str] | os._Environ[str]) -> str:
    key = environ.get("AWS_ACCESS_KEY_ID", "")
    return f"access key {key[:4]}... from AWS_ACCESS_KEY_ID" if key else "the default AWS chain"


# ------------------------------------------------------------------------------------------ S3
def _bucket_and_prefix(uri: str) -> tuple[str, str] | None:
    """(bucket, key prefix ending in ``/`` unless empty), or None after saying why not."""
    try:
        parsed = split_uri(uri)
    except ValueError as exc:
        parsed = None
        why = str(exc)
    else:
        why = f"{uri}: not an S3 URI"
    if parsed is None or parsed.kind != "s3":
        emit("s3.uri", uri, "fail", why, "write s3a://BUCKET/prefix/")
        return None
    return parsed.authority, _dir_prefix(parsed.path)


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
    location = _bucket_and_prefix(uri)
    if location is None:
        return False
    bucket, prefix = location
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

    client = new_s3_client(settings, max_attempts=2, timeout=(5.0, 20.0))
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
        code = s3_error_code(exc)
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
        code = s3_error_code(exc)
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


def results_to_stdout() -> None:
    """Send :func:`emit`'s results to a copy of fd 1, which stays the terminal or pipe even
    when a JVM's chatter is later sent elsewhere by redirecting fd 1."""
    global _OUT  # noqa: PLW0603 - one results stream per process
    _OUT = os.fdopen(os.dup(1), "w", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    results_to_stdout()
    if len(args) >= 2 and args[0] == "s3":
        return 0 if all([check_s3(uri) for uri in args[1:]]) else 1
    print("usage: python -m fmaprep.storage.probe s3 URI...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
