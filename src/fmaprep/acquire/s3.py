"""``s3://`` and ``s3a://`` destinations through boto3.

Credentials come from boto3's usual chain (env, profile, instance role) and are never logged.
The endpoint comes from ``FMAPREP_S3_ENDPOINT`` when set (MinIO and other S3-compatible
servers; path-style addressing then). No ACL is ever sent. A writer spools to a local temporary
file and uploads on commit (``upload_fileobj`` does a multipart upload for big objects), so an
object is visible only once complete.

Tested against s3proxy on loopback (tests/acquire/test_s3_destination.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO, cast

from fmaprep.acquire.destination import Destination, SpooledWriter, Writer, check_key

ENDPOINT_ENV = "FMAPREP_S3_ENDPOINT"


def _client() -> Any:
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get(ENDPOINT_ENV) or None
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        s3={"addressing_style": "path" if endpoint else "auto"},
        # only the checksums S3 itself requires: S3-compatible servers refuse boto3's newer
        # default checksum headers (NotImplemented)
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class _S3Writer(SpooledWriter):
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key

    def _upload(self, data: BinaryIO) -> None:
        self._client.upload_fileobj(data, self._bucket, self._key)  # multipart when big


class S3Destination(Destination):
    def __init__(self, bucket: str, prefix: str, uri: str) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.uri = uri
        self._s3 = _client()

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def writer(self, key: str) -> Writer:
        return _S3Writer(self._s3, self.bucket, self._key(key))

    def size(self, key: str) -> int | None:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    def open_read(self, key: str) -> BinaryIO:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(f"{self.uri}/{key}") from exc
            raise
        return cast(BinaryIO, body)  # streamed (an io.IOBase): never the whole object in memory

    def append_text(self, key: str, text: str) -> None:
        # S3 has no append: read, add, put (fine for the small metadata file it is used for).
        old = self.read_text(key) or ""
        data = (old + text).encode("utf-8")
        self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._key(prefix.rstrip("/")) + "/"
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder, Delimiter="/"
        ):
            keys += [prefix.rstrip("/") + "/" + o["Key"][len(folder):]
                     for o in page.get("Contents", [])]  # fmt: skip
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def publish(self, staged: str, key: str) -> None:
        # a server-side copy (multipart above boto3's threshold), then the staged copy goes
        source = {"Bucket": self.bucket, "Key": self._key(staged)}
        self._s3.copy(source, self.bucket, self._key(key))
        self.delete(staged)

    def local_tmp_dir(self) -> Path | None:
        return None
