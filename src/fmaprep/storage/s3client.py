"""S3 behind :class:`fmaprep.storage.stores.Store`, with boto3: listings in parallel by
sub-prefix, streaming reads that resume with a Range (and ``If-Match``), multipart writes
invisible until completed, batched deletes, bounded retries. Never an ACL; a copy only where
acquisition publishes what it verified (:meth:`S3Store.replace`)."""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from fmaprep.storage.retrying import RawStream, RetryingReader, _Empty, buffered
from fmaprep.storage.s3_settings import S3Settings
from fmaprep.storage.stores import (
    HTTP_TIMEOUT,
    PART_SIZE,
    S3_MAX_ATTEMPTS,
    S3_PAGE,
    Entry,
    Store,
    StoreError,
    StoreURI,
    TransientError,
    Writer,
    _dir_prefix,
)
from fmaprep.storage.uris import split_uri

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------- S3
_S3_CLIENTS: dict[tuple[int, S3Settings], Any] = {}
_S3_LOCK = threading.Lock()
LIST_THREADS = 8  # sub-prefixes listed at once
LIST_FANOUT = 1000  # more first-level sub-prefixes than this: one flat listing instead
_S3_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}


def s3_error_code(exc: BaseException) -> str:
    """The S3 error code (``NoSuchBucket``, ``SlowDown``) of a botocore ``ClientError``; ``""``
    for any other exception."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _s3_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _s3_transient(exc: BaseException) -> bool:
    return s3_error_code(exc) in _S3_TRANSIENT_CODES or _s3_status(exc) >= 500


def _s3_missing(exc: BaseException) -> bool:
    return s3_error_code(exc) in ("404", "NoSuchKey", "NotFound") or _s3_status(exc) == 404


def s3_client(settings: S3Settings) -> Any:
    """This process's boto3 client for ``settings`` (created once; credentials from boto3's
    default chain: environment, profile, EC2 instance profile)."""
    key = (os.getpid(), settings)  # a forked worker builds its own
    client = _S3_CLIENTS.get(key)
    if client is not None:
        return client
    with _S3_LOCK:
        client = _S3_CLIENTS.get(key)
        if client is None:
            client = _S3_CLIENTS[key] = new_s3_client(settings)
    return client


def new_s3_client(
    settings: S3Settings,
    *,
    max_attempts: int = S3_MAX_ATTEMPTS,
    timeout: tuple[float, float] = HTTP_TIMEOUT,
) -> Any:
    """A new boto3 S3 client for ``settings``: the one place a client is configured (the job's
    stores use :func:`s3_client`; the health check asks for fewer attempts and shorter
    timeouts, so that a dead endpoint fails its check in seconds)."""
    import boto3.session
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        retries={"mode": "standard", "max_attempts": max_attempts},
        # only the checksums S3 requires: S3-compatible servers (s3proxy) refuse the
        # newer default checksum headers
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path" if settings.path_style_access else "auto"},
        connect_timeout=timeout[0],
        read_timeout=timeout[1],
        max_pool_connections=16,
        tcp_keepalive=True,
    )
    session = boto3.session.Session()  # not the shared default: thread-safe creation
    client = session.client("s3", endpoint_url=settings.endpoint, config=config)
    client.meta.events.register("before-sign.s3.DeleteObjects", _content_md5_instead)
    return client


def _content_md5_instead(request: Any, **_: Any) -> None:
    """DeleteObjects must carry a checksum: send Content-MD5 (which AWS S3 and S3-compatible
    servers accept) instead of botocore's default x-amz-checksum-crc32, which s3proxy refuses
    with NotImplemented."""
    headers = request.headers
    for name in list(headers.keys()):
        lowered = name.lower()
        if lowered.startswith("x-amz-checksum-") or lowered == "x-amz-sdk-checksum-algorithm":
            del headers[name]
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, bytes | bytearray) and "Content-MD5" not in headers:
        headers["Content-MD5"] = _md5_b64(bytes(body))


def _unquote_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _md5_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


class _S3Writer(Writer):
    """Buffers at most one part; a single PutObject when the whole file fits in one part."""

    def __init__(self, store: S3Store, uri: str, bucket: str, key: str, part_size: int) -> None:
        super().__init__(uri)
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts are at least 5 MiB")
        self._store, self._bucket, self._key = store, bucket, key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, data: memoryview) -> None:
        while len(data):
            room = self._part_size - len(self._buffer)
            self._buffer += data[:room]
            data = data[room:]
            if len(self._buffer) >= self._part_size:
                self._upload_part()

    def _upload_part(self) -> None:
        client = self._store.client
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=self._bucket, Key=self._key)[
                "UploadId"
            ]
        number = len(self._parts) + 1
        body = bytes(self._buffer)
        response = client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=_md5_b64(body),
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer = bytearray()

    def _commit(self) -> None:
        client = self._store.client
        if self._upload_id is None:
            body = bytes(self._buffer)
            client.put_object(
                Bucket=self._bucket, Key=self._key, Body=body, ContentMD5=_md5_b64(body)
            )
            self._buffer = bytearray()
            return
        if self._buffer:
            self._upload_part()
        client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._store.client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id
            )


class S3Store(Store):
    """``s3://`` and ``s3a://`` (the same objects) through boto3. No ACL is ever sent."""

    kind = "s3"

    def __init__(self, settings: S3Settings, part_size: int = PART_SIZE) -> None:
        self.settings = settings
        self.part_size = part_size

    def __reduce__(self) -> tuple[Any, ...]:  # a task gets the settings, never a client
        return (S3Store, (self.settings, self.part_size))

    @property
    def client(self) -> Any:
        return s3_client(self.settings)

    @staticmethod
    def _split(uri: str) -> StoreURI:
        return split_uri(uri, "s3")

    def list_files(self, uri: str) -> Iterator[Entry]:
        """Every object under ``uri``, in key order. A prefix whose first level holds at most
        LIST_FANOUT sub-prefixes (FMA's ``000/`` .. ``155/``) is listed one sub-prefix per
        thread: pages of one listing follow each other (a round trip each), and some servers
        (s3proxy) scan the whole prefix for every page; otherwise one paginated listing."""
        parsed = self._split(uri)
        prefix = _dir_prefix(parsed.path)
        bucket = parsed.authority
        first = self.client.list_objects_v2(
            Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=S3_PAGE
        )
        subdirs = [p["Prefix"] for p in first.get("CommonPrefixes", ())]
        if first.get("IsTruncated") or not subdirs or len(subdirs) > LIST_FANOUT:
            entries: Iterable[Entry] = self._walk(parsed, prefix)
        else:
            listed = list(self._files(parsed, first))
            with ThreadPoolExecutor(min(LIST_THREADS, len(subdirs))) as pool:
                for group in pool.map(lambda sub: list(self._walk(parsed, sub)), subdirs):
                    listed += group
            listed.sort(key=lambda e: e.uri)
            entries = listed
        found = False
        for entry in entries:
            found = True
            yield entry
        if not found and parsed.path and not parsed.path.endswith("/"):
            single = self.stat(uri)  # the URI may name one object
            if single is not None:
                yield single

    def _walk(self, parsed: StoreURI, prefix: str) -> Iterator[Entry]:
        """One paginated listing of every file under ``prefix``."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": parsed.authority,
                "Prefix": prefix,
                "MaxKeys": S3_PAGE,
            }
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            yield from self._files(parsed, page)
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    @staticmethod
    def _files(parsed: StoreURI, page: dict[str, Any]) -> Iterator[Entry]:
        """The files of one listing page (directory markers, keys ending in /, are not files)."""
        for item in page.get("Contents", ()):
            if not item["Key"].endswith("/"):
                yield Entry(
                    parsed.with_path(item["Key"]),
                    int(item["Size"]),
                    item["LastModified"].timestamp(),
                    _unquote_etag(item.get("ETag")),
                )

    def stat(self, uri: str) -> Entry | None:
        parsed = self._split(uri)
        if not parsed.path:
            return None
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=parsed.authority, Key=parsed.path)
        except ClientError as exc:
            if _s3_missing(exc):
                return None
            raise
        return Entry(
            parsed.uri,
            int(head["ContentLength"]),
            head["LastModified"].timestamp(),
            _unquote_etag(head.get("ETag")),
        )

    def open_read(self, uri: str, start: int = 0) -> BinaryIO:
        from botocore.exceptions import ClientError

        parsed = self._split(uri)
        etag: list[str] = []

        def open_at(offset: int) -> tuple[RawStream, int | None]:
            kwargs: dict[str, Any] = {"Bucket": parsed.authority, "Key": parsed.path}
            if offset:
                kwargs["Range"] = f"bytes={offset}-"
            if etag:
                kwargs["IfMatch"] = f'"{etag[0]}"'
            try:
                response = self.client.get_object(**kwargs)
            except ClientError as exc:
                code = s3_error_code(exc)
                if _s3_missing(exc):
                    raise FileNotFoundError(errno.ENOENT, "no such object", uri) from exc
                if code == "InvalidRange":  # offset at or past the end
                    return _Empty(), None
                if code in ("PreconditionFailed", "412"):
                    raise StoreError(f"{uri}: replaced while being read (ETag changed)") from exc
                if _s3_transient(exc):
                    raise TransientError(f"{uri}: {exc}") from exc
                raise
            if not etag and response.get("ETag"):
                etag.append(str(_unquote_etag(response["ETag"])))
            total: int | None = None
            content_range = response.get("ContentRange") or ""
            match = re.search(r"/(\d+)$", content_range)
            if match:
                total = int(match.group(1))
            elif "ContentLength" in response:
                total = offset + int(response["ContentLength"])
            return response["Body"], total

        def transient(exc: BaseException) -> bool:  # botocore's ClientError for a 5xx, throttling
            return isinstance(exc, ClientError) and _s3_transient(exc)

        reader = RetryingReader(open_at, start, name=uri, transient=transient)
        reader.open()
        return buffered(reader)

    def write_bytes(self, uri: str, data: bytes, **condition: str) -> None:
        parsed = self._split(uri)
        self.client.put_object(
            Bucket=parsed.authority,
            Key=parsed.path,
            Body=data,
            ContentMD5=_md5_b64(data),
            **condition,  # create_new's If-None-Match
        )

    def create_new(self, uri: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self.write_bytes(uri, data, IfNoneMatch="*")
        except ClientError as exc:
            if s3_error_code(exc) in ("PreconditionFailed", "412") or _s3_status(exc) == 412:
                raise FileExistsError(errno.EEXIST, "object exists", uri) from exc
            raise

    def open_write(self, uri: str) -> Writer:
        parsed = self._split(uri)
        return _S3Writer(self, uri, parsed.authority, parsed.path, self.part_size)

    def delete(self, uris: Iterable[str]) -> None:
        batches: dict[str, list[str]] = {}
        for uri in uris:
            parsed = self._split(uri)
            keys = batches.setdefault(parsed.authority, [])
            keys.append(parsed.path)
            if len(keys) == S3_PAGE:
                self._delete_batch(parsed.authority, keys)
                batches[parsed.authority] = []
        for bucket, keys in batches.items():
            if keys:
                self._delete_batch(bucket, keys)

    def replace(self, src: str, dst: str) -> None:
        source, target = self._split(src), self._split(dst)
        self.client.copy(
            {"Bucket": source.authority, "Key": source.path}, target.authority, target.path
        )
        self.delete([src])

    def _delete_batch(self, bucket: str, keys: list[str]) -> None:
        response = self.client.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        errors = [e for e in response.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            raise StoreError(
                f"s3://{bucket}: {len(errors)} of {len(keys)} deletes failed, e.g. "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )

    def abort_uploads(self, uri: str, doomed: Callable[[str], bool]) -> int:
        """ListMultipartUploads under ``uri``'s prefix, then AbortMultipartUpload for each one
        to a URI ``doomed`` accepts; a refused or failed request is a StoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = self._split(uri)
        try:
            uploads = [
                (key, upload_id)
                for key, upload_id in self._uploads(parsed.authority, _dir_prefix(parsed.path))
                if doomed(parsed.with_path(key))
            ]
            for key, upload_id in uploads:
                self._abort_upload(parsed.authority, key, upload_id)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"{uri}: aborting unfinished uploads: {exc}") from exc
        return len(uploads)

    def _uploads(self, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, upload id) of every unfinished multipart upload under ``prefix``, page by page."""
        markers: dict[str, str] = {}
        while True:
            # no MaxUploads: S3's default page is 1000 already, and s3proxy refuses the
            # parameter (501 Not Implemented)
            page = self.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix, **markers)
            for upload in page.get("Uploads", ()):
                yield upload["Key"], upload["UploadId"]
            if not page.get("IsTruncated"):
                return
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page.get("NextUploadIdMarker") or "",
            }

    def _abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if s3_error_code(exc) != "NoSuchUpload":  # completed or aborted since it was listed
                raise
