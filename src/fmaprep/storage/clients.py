"""Opening a store by URI, and the small, secret-free settings every task receives to do it.

``StoreSettings`` says how to reach S3 (endpoint, path-style, region: the job's
:class:`~fmaprep.storage.s3_settings.S3Settings`) and HDFS (the NameNode's HTTP address and the
default filesystem behind ``hdfs:///``). Credentials stay in the environment or the instance
profile of whoever opens a store; they never travel with a task.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fmaprep.storage.localfs import LocalStore
from fmaprep.storage.s3_settings import S3Settings, load_s3_settings
from fmaprep.storage.s3client import S3Store, s3_client
from fmaprep.storage.stores import WEBHDFS_ENV, Store
from fmaprep.storage.uris import split_uri
from fmaprep.storage.webhdfs import HDFSStore, webhdfs_base

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSettings:
    s3: S3Settings | None = None
    webhdfs: str | None = None  # the NameNode's HTTP address, e.g. http://nn:9870
    default_fs: str | None = None  # hdfs://nn:8020: what hdfs:///path means

    @classmethod
    def from_env(
        cls,
        endpoint: str | None = None,
        default_fs: str | None = None,
        namenode_http: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> StoreSettings:
        """The job's settings: ``conf/storage.toml`` and the environment (``FMAPREP_S3_*``,
        ``FMAPREP_WEBHDFS_URL``, ``FMAPREP_HDFS_URI``), then what the driver's Hadoop
        configuration says (``default_fs``, ``namenode_http``)."""
        env = os.environ if environ is None else environ
        return cls(
            s3=load_s3_settings(env=env, endpoint=endpoint),
            webhdfs=(env.get(WEBHDFS_ENV) or "").rstrip("/") or namenode_http,
            default_fs=env.get("FMAPREP_HDFS_URI") or default_fs or None,
        )

    @classmethod
    def from_hadoop_conf(cls, hconf: Any, endpoint: str | None = None) -> StoreSettings:
        """:meth:`from_env`, completed by the driver's Hadoop configuration (``hconf``, the JVM's
        ``Configuration``): ``fs.defaultFS`` (so ``hdfs:///x`` means what it means to Hadoop)
        and ``dfs.namenode.http-address`` (so tasks reach WebHDFS with no Hadoop client)."""
        default_fs = str(hconf.get("fs.defaultFS") or "")
        http = str(hconf.get("dfs.namenode.http-address") or "")
        return cls.from_env(
            endpoint=endpoint,
            default_fs=default_fs if default_fs.startswith("hdfs://") else None,
            namenode_http=None if not http or http.startswith("0.0.0.0") else f"http://{http}",
        )

    def full_uri(self, uri: str) -> str:
        """``hdfs:///x`` with the default filesystem's host spelled out."""
        if uri.startswith("hdfs:///") and self.default_fs:
            return self.default_fs.rstrip("/") + uri[len("hdfs://") :]
        return uri


def open_store(uri: str, settings: StoreSettings | None = None) -> Store:
    """The store holding ``uri``: a local path, ``file:``, ``s3://``, ``s3a://`` or ``hdfs://``."""
    kind = split_uri(uri).kind  # BadURIError: no client for that scheme
    settings = settings or StoreSettings()
    if kind == "file":
        return LocalStore()
    if kind == "s3":
        return S3Store(settings.s3 or S3Settings())
    return HDFSStore(settings.webhdfs or webhdfs_base(uri))


def warm_up(uris: Iterable[str], settings: StoreSettings) -> threading.Thread | None:
    """Build this process's S3 client in the background when a URI is on S3: boto3's import and
    S3's service model cost ~0.3 s, which the driver can pay while the JVM starts."""
    if settings.s3 is None or not any(split_uri(uri).kind == "s3" for uri in uris):
        return None
    s3 = settings.s3

    def build() -> None:
        try:
            s3_client(s3)
        except Exception as exc:  # only a head start: the job's own call reports the problem
            log.debug("S3 client warm-up failed: %s", exc)

    thread = threading.Thread(target=build, name="fmaprep-warm-s3", daemon=True)
    thread.start()
    return thread
