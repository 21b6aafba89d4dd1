"""fmaprep.stores against real services: local disk, the loopback S3 server (s3proxy) and HDFS
(WebHDFS), from scripts/local-services.sh; the retrying reader against a real HTTP server that
drops the connection mid-body. No mocks: requests are counted with the clients' own hooks."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import logging
import pickle
import random
import re
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from fmaprep.storage import retrying, stores, webhdfs
from fmaprep.storage.clients import StoreSettings
from fmaprep.storage.clients import open_store as open_with_settings
from fmaprep.storage.localfs import LocalStore
from fmaprep.storage.retrying import RetryingReader
from fmaprep.storage.s3_settings import S3Settings
from fmaprep.storage.s3client import S3Store
from fmaprep.storage.stores import Store, TransientError
from fmaprep.storage.uris import split_uri
from fmaprep.storage.webhdfs import HDFSStore
from local_services_fixture import local_services

__all__ = ["local_services"]  # the fixture, re-exported for pytest

MiB = 1024 * 1024
# Every awkward character the issue names. HDFS refuses ':' in a name (DFSUtil.isValidName), so
# the colon is only in the S3/local set.
AWKWARD = [
    "Artist, Song.mp3",
    "unbalanced {brace.mp3",
    "braces {a,b}.mp3",
    "[bracket] name.mp3",
    "space dir/two  spaces .mp3",
    "hash#1.mp3",
    "percent%20not-a-space.mp3",
    "percent%.mp3",
    "question?.mp3",
    'quote\'s "double".mp3',
    "Ñandú/Ärger é 日本.mp3",
    "plus+sign.mp3",
    "semi;colon&amp=1.mp3",
    "back\\slash.mp3",
    "deep/a/b/c/leaf.mp3",
    "_hidden/x.mp3",
    ".dot.mp3",
]
COLON = ["colon: name.mp3"]


def _payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------------------- URI parsing
@pytest.mark.parametrize(
    ("uri", "kind", "root", "path"),
    [
        ("s3a://b/x/y#z?.mp3", "s3", "s3a://b/", "x/y#z?.mp3"),
        ("s3://b", "s3", "s3://b/", ""),
        ("s3://b/", "s3", "s3://b/", ""),
        ("S3A://b/k%20", "s3", "S3A://b/", "k%20"),
        ("hdfs:///x/_y", "hdfs", "hdfs://", "/x/_y"),
        ("hdfs://nn:8020/x?y#z", "hdfs", "hdfs://nn:8020", "/x?y#z"),
        ("hdfs://nn", "hdfs", "hdfs://nn", ""),
        ("file:///tmp/a#b", "file", "file://", "/tmp/a#b"),
        ("file:/tmp/a", "file", "file:", "/tmp/a"),
        ("file://localhost/tmp/a", "file", "file://localhost", "/tmp/a"),
        ("/tmp/a?b", "file", "", "/tmp/a?b"),
        ("rel/a", "file", "", "rel/a"),
    ],
)
def test_split_uri_keeps_names_and_spelling(uri: str, kind: str, root: str, path: str) -> None:
    parsed = split_uri(uri)
    assert (parsed.kind, parsed.root, parsed.path) == (kind, root, path)
    assert parsed.uri == uri or uri in ("s3://b", "hdfs://nn")


@pytest.mark.parametrize("uri", ["gs://b/x", "file://otherhost/x", "s3:/b/x", "s3://", ""])
def test_split_uri_refuses(uri: str) -> None:
    with pytest.raises(ValueError):
        split_uri(uri)


def open_store(uri: str, s3: S3Settings | None = None) -> Store:
    return open_with_settings(uri, StoreSettings(s3=s3))


def test_open_store_by_scheme() -> None:
    assert isinstance(open_store("/tmp"), LocalStore)
    assert isinstance(open_store("file:///tmp"), LocalStore)
    assert isinstance(open_store("s3a://b/x"), S3Store)
    assert isinstance(open_store("hdfs://nn:8020/x"), HDFSStore)
    with pytest.raises(ValueError, match="no client for gs://"):
        open_store("gs://b/x")


def test_stores_pickle_as_their_settings() -> None:
    settings = S3Settings(endpoint="http://127.0.0.1:1", path_style_access=True)
    s3 = S3Store(settings, part_size=8 * MiB)
    s3_client_made = s3.client  # a cached client must not travel with the store
    assert s3_client_made is s3.client
    again = pickle.loads(pickle.dumps(s3))
    assert (again.settings, again.part_size) == (settings, 8 * MiB)
    assert len(pickle.dumps(s3)) < 1000
    hdfs = pickle.loads(pickle.dumps(HDFSStore("http://nn:9870", "alice")))
    assert (hdfs.base_url, hdfs.user) == ("http://nn:9870", "alice")


def test_webhdfs_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMAPREP_WEBHDFS_URL", raising=False)
    monkeypatch.setenv("FMAPREP_HDFS_URI", "hdfs://10.0.0.5:8020")
    assert webhdfs.webhdfs_base("hdfs://nn.example:8020/x") == "http://nn.example:9870"
    assert webhdfs.webhdfs_base("hdfs:///x") == "http://10.0.0.5:9870"
    monkeypatch.setenv("FMAPREP_WEBHDFS_URL", "http://127.0.0.1:29101/")
    assert webhdfs.webhdfs_base("hdfs://nn.example:8020/x") == "http://127.0.0.1:29101"


def test_webhdfs_base_from_hadoop_conf_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No FMAPREP_WEBHDFS_URL: the default file system's NameNode is reached at the HTTP
    address hdfs-site.xml gives (0.0.0.0 meaning the NameNode's own host); another host at
    port 9870."""
    for name in ("FMAPREP_WEBHDFS_URL", "FMAPREP_HDFS_URI"):
        monkeypatch.delenv(name, raising=False)
    prop = "<property><name>{}</name><value>{}</value></property>"
    (tmp_path / "core-site.xml").write_text(
        f"<configuration>{prop.format('fs.defaultFS', 'hdfs://nn.example:8020')}</configuration>"
    )
    site = tmp_path / "hdfs-site.xml"
    site.write_text(
        f"<configuration>{prop.format('dfs.namenode.http-address', '10.0.0.9:50070')}"
        "</configuration>"
    )
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    assert webhdfs.webhdfs_base("hdfs:///x") == "http://10.0.0.9:50070"
    assert webhdfs.webhdfs_base("hdfs://nn.example:8020/x") == "http://10.0.0.9:50070"
    assert webhdfs.webhdfs_base("hdfs://other:8020/x") == "http://other:9870"
    site.write_text(site.read_text().replace("10.0.0.9", "0.0.0.0"))
    assert webhdfs.webhdfs_base("hdfs:///x") == "http://nn.example:50070"


# ------------------------------------------------- the retrying reader against a real server
class _FlakyServer(http.server.ThreadingHTTPServer):
    """Serves ``data`` with Range support; the first ``drops`` responses promise the whole
    remainder but close the connection after ``cut`` bytes of it."""

    daemon_threads = True

    def __init__(self, data: bytes, drops: int, cut: int) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.data, self.drops, self.cut = data, drops, cut
        self.ranges: list[int] = []
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client going away mid-body is what these tests do


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    server: _FlakyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = self.server.data
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-"))
        assert match, self.headers.get("Range")
        start = int(match.group(1))
        with self.server.lock:
            self.server.ranges.append(start)
            drop = self.server.drops > 0
            self.server.drops -= 1
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if drop:
            self.wfile.write(body[: self.server.cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def flaky() -> Iterator[Any]:
    servers: list[_FlakyServer] = []

    def start(data: bytes, drops: int, cut: int) -> tuple[_FlakyServer, str]:
        server = _FlakyServer(data, drops, cut)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/obj"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _http_opener(url: str) -> retrying.Opener:
    session = requests.Session()

    def open_at(offset: int) -> tuple[retrying.RawStream, int | None]:
        response = session.get(url, headers={"Range": f"bytes={offset}-"}, stream=True, timeout=10)
        response.raise_for_status()
        match = re.search(r"/(\d+)$", response.headers.get("Content-Range", ""))
        total = int(match.group(1)) if match else offset + int(response.headers["Content-Length"])
        raw: retrying.RawStream = response.raw
        return raw, total

    return open_at


def test_retrying_reader_resumes_a_dropped_body_with_a_range(
    flaky: Any, caplog: pytest.LogCaptureFixture
) -> None:
    data = _payload(5 * MiB + 17, seed=1)
    server, url = flaky(data, drops=1, cut=MiB + 3)
    caplog.set_level(logging.WARNING, logger="fmaprep.stores")
    reader = RetryingReader(_http_opener(url), name=url, backoff=lambda n: 0.01)
    with retrying.buffered(reader, 256 * 1024) as stream:
        got = stream.read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert server.ranges == [0, MiB + 3]  # reopened exactly where the body broke
    assert reader.reopens == 1
    assert "attempt 2 of 6" in caplog.text


def test_retrying_reader_start_and_seek(flaky: Any) -> None:
    data = _payload(3 * MiB, seed=2)
    server, url = flaky(data, drops=2, cut=1000)
    reader = RetryingReader(_http_opener(url), 2 * MiB, name=url, backoff=lambda n: 0.0)
    with retrying.buffered(reader, 64 * 1024) as stream:
        assert stream.read(10) == data[2 * MiB : 2 * MiB + 10]
        stream.seek(-5, io.SEEK_END)
        assert stream.read() == data[-5:]
        stream.seek(100)
        assert stream.read(MiB) == data[100 : 100 + MiB]
    # each seek past the skip limit reopens at the target; the drops hit 1000 bytes in
    assert server.ranges == [2 * MiB, 3 * MiB - 5, 100]


def test_retrying_reader_gives_up_after_max_attempts_without_progress(flaky: Any) -> None:
    data = _payload(MiB, seed=3)
    server, url = flaky(data, drops=100, cut=0)
    reader = RetryingReader(_http_opener(url), name=url, max_attempts=3, backoff=lambda n: 0.0)
    with pytest.raises(TransientError, match="failed 3 times"):
        reader.read(100)
    assert len(server.ranges) == 3


def test_retrying_reader_does_not_retry_a_missing_file() -> None:
    calls: list[int] = []

    def open_at(offset: int) -> tuple[retrying.RawStream, int | None]:
        calls.append(offset)
        raise FileNotFoundError(offset)

    with pytest.raises(FileNotFoundError):
        RetryingReader(open_at, name="x").open()
    assert calls == [0]


# ------------------------------------------------------------------------------ the stores
@pytest.fixture(scope="module")
def services(local_services: dict[str, str]) -> Iterator[dict[str, str]]:
    """The services' env applied to os.environ (boto3's chain and WebHDFS read it)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in (
            "FMAPREP_HDFS_URI",
            "FMAPREP_WEBHDFS_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        ):
            patch.setenv(key, local_services[key])
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        probe = requests.get(
            f"{local_services['FMAPREP_WEBHDFS_URL']}/webhdfs/v1/?op=GETFILESTATUS&user.name=x",
            timeout=30,
        )
        if probe.status_code == 500 and "opens java.lang" in probe.text.replace("&quot;", ""):
            pytest.fail(
                "the local NameNode's WebHDFS fails on Java 17 (JAXB needs --add-opens "
                "java.base/java.lang=ALL-UNNAMED): restart the services with "
                "JDK_JAVA_OPTIONS=--add-opens=java.base/java.lang=ALL-UNNAMED"
            )
        yield local_services


def _settings(env: dict[str, str]) -> S3Settings:
    return S3Settings(endpoint=env["FMAPREP_S3_ENDPOINT"], path_style_access=True)


@pytest.fixture(
    params=[
        "local",
        pytest.param("s3", marks=pytest.mark.slow),
        pytest.param("s3-as-s3", marks=pytest.mark.slow),
        pytest.param("hdfs", marks=pytest.mark.slow),
        pytest.param("hdfs-named", marks=pytest.mark.slow),
    ]
)
def root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Store, str]:
    """A fresh, empty directory URI on each store, and its store."""
    run = uuid.uuid4().hex[:8]
    if request.param == "local":
        return LocalStore(), str(tmp_path / "store")
    env = request.getfixturevalue("services")
    if request.param == "hdfs":  # the default file system's NameNode
        uri = f"hdfs:///tmp/fmaprep-stores-{run}"
        return open_store(uri), uri
    if request.param == "hdfs-named":
        uri = f"{env['FMAPREP_HDFS_URI']}/tmp/fmaprep-stores-{run}"
        return open_store(uri), uri
    scheme = "s3a" if request.param == "s3" else "s3"
    uri = f"{scheme}://{env['FMAPREP_S3_BUCKET']}/stores-{run}"
    return open_store(uri, _settings(env)), uri


def _names(store: Store) -> list[str]:
    return AWKWARD + ([] if store.kind == "hdfs" else COLON)


def test_listing_awkward_names_equals_what_was_written(root: tuple[Store, str]) -> None:
    store, base = root
    written = {}
    for i, name in enumerate(_names(store)):
        written[f"{base}/{name}"] = _payload(100 + i, seed=i)
        store.write_bytes(f"{base}/{name}", written[f"{base}/{name}"])
    listed = list(store.list_files(base))
    assert sorted(e.uri for e in listed) == sorted(written)
    assert sorted(e.uri for e in store.list_files(base + "/")) == sorted(written)
    for entry in listed:
        assert entry.size == len(written[entry.uri])
        assert entry.mtime is not None
        assert store.read_bytes(entry.uri) == written[entry.uri]
        assert store.stat(entry.uri) == entry
        if store.kind == "s3":  # S3's ETag of a single PutObject is the body's MD5
            assert entry.etag == hashlib.md5(written[entry.uri]).hexdigest()
    one = f"{base}/{AWKWARD[0]}"
    assert [e.uri for e in store.list_files(one)] == [one]  # a file lists as itself
    assert list(store.list_files(f"{base}/no-such-dir")) == []
    assert list(store.list_files(f"{base}/Artist")) == []  # a prefix is not a directory
    store.delete(written)
    assert list(store.list_files(base)) == []


def test_missing_files(root: tuple[Store, str]) -> None:
    store, base = root
    with pytest.raises(FileNotFoundError):
        store.open_read(f"{base}/missing#?.mp3")
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"{base}/missing")
    assert store.stat(f"{base}/missing") is None
    store.delete([f"{base}/missing"])  # fine


def test_open_read_streams_and_starts_anywhere(root: tuple[Store, str]) -> None:
    store, base = root
    data = _payload(9 * MiB + 123, seed=7)
    uri = f"{base}/big, one#.bin"
    store.write_bytes(uri, data)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        with store.open_read(uri) as stream:
            while chunk := stream.read(256 * 1024):
                digest.update(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest.digest() == hashlib.sha256(data).digest()
    assert peak < 4 * MiB, peak  # streamed: the 9 MiB object is never whole in memory
    for start in (1, 5 * MiB + 1, len(data) - 1, len(data)):
        with store.open_read(uri, start) as stream:
            assert stream.read() == data[start:]
    with store.open_read(uri) as stream:  # seekable, as decoders want
        stream.seek(-10, io.SEEK_END)
        assert stream.read() == data[-10:]
        stream.seek(3 * MiB)
        assert stream.read(100) == data[3 * MiB : 3 * MiB + 100]


def test_open_write_commit_and_abort(root: tuple[Store, str]) -> None:
    store, base = root
    if isinstance(store, S3Store):
        store = S3Store(store.settings, part_size=8 * MiB)  # 20 MB: three parts
    data = _payload(20 * 1000 * 1000, seed=9)
    uri = f"{base}/part-00000 {{x}}"
    with store.open_write(uri) as writer:
        view = memoryview(data)
        for offset in range(0, len(data), 3 * MiB + 11):  # writes that do not align with parts
            writer.write(view[offset : offset + 3 * MiB + 11])
        assert store.stat(uri) is None  # invisible until committed
        writer.commit()
    assert store.read_bytes(uri) == data
    if store.kind == "s3":
        assert (store.stat(uri) or pytest.fail()).etag.endswith("-3")  # type: ignore[union-attr]

    with store.open_write(f"{base}/aborted") as writer:
        writer.write(data[: 10 * MiB])
        writer.abort()
    with store.open_write(f"{base}/left-by-an-error") as writer:  # the context aborts
        writer.write(data[: 9 * MiB])
    assert [e.uri for e in store.list_files(base)] == [uri]  # no temp names either
    if isinstance(store, S3Store):
        bucket = split_uri(base).authority
        prefix = split_uri(base).path
        pending = store.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        assert pending.get("Uploads", []) == []

    small = f"{base}/small"  # below one part: one PutObject (or one CREATE)
    with store.open_write(small) as writer:
        writer.write(b"abc")
        writer.commit()
    assert store.read_bytes(small) == b"abc"
    empty = f"{base}/empty"
    with store.open_write(empty) as writer:
        writer.commit()
    assert store.read_bytes(empty) == b""
    assert (store.stat(empty) or pytest.fail()).size == 0


def test_write_bytes_replaces_atomically(root: tuple[Store, str]) -> None:
    """A reader polling while the file is replaced over and over sees old or new, never
    nothing and never a mix."""
    store, base = root
    uri = f"{base}/_commit.json"
    versions = [_payload(MiB, seed=20 + i) for i in range(2)]
    store.write_bytes(uri, versions[0])
    stop = threading.Event()
    seen: list[bytes | Exception] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(store.read_bytes(uri))
            except Exception as exc:
                seen.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        for i in range(12):
            store.write_bytes(uri, versions[(i + 1) % 2])
    finally:
        stop.set()
        thread.join()
    assert seen
    bad = [s for s in seen if s not in versions]
    assert not bad, bad[:1]
    assert store.read_bytes(uri) == versions[0]
    assert [e.uri for e in store.list_files(base)] == [uri]  # no temp file left


def test_create_new(root: tuple[Store, str]) -> None:
    store, base = root
    store.create_new(f"{base}/gen-1", b"one")
    assert store.read_bytes(f"{base}/gen-1") == b"one"
    if store.kind == "s3":
        return  # s3proxy ignores If-None-Match (AWS S3 refuses with 412): no exclusion test here
    with pytest.raises(FileExistsError):
        store.create_new(f"{base}/gen-1", b"two")
    assert store.read_bytes(f"{base}/gen-1") == b"one"


def _count_s3(store: S3Store) -> dict[str, int]:
    counts: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    store.client.meta.events.register("before-call.s3", count)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_s3_lists_and_deletes_2500_keys_in_few_requests(
    services: dict[str, str], layout: str
) -> None:
    """Nested as FMA (25 sub-prefixes of 100): one delimiter request, then one per sub-prefix
    (in parallel); flat: that request, then the 3 pages of one listing. Key order either way."""
    base = f"s3a://{services['FMAPREP_S3_BUCKET']}/stores-many-{uuid.uuid4().hex[:8]}"
    store = S3Store(_settings(services))
    if layout == "nested":
        uris = [f"{base}/{i // 100:03d}/{i:06d} , #.mp3" for i in range(2500)]
        uris.append(f"{base}/000.mp3")  # a file beside the sub-prefixes, sorted among them
    else:
        uris = [f"{base}/{i:06d} , #.mp3" for i in range(2500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: store.write_bytes(u, u.encode()), uris))
    counts = _count_s3(store)
    listed = list(store.list_files(base))
    assert [e.uri for e in listed] == sorted(uris)
    lists = 1 + 25 if layout == "nested" else 1 + 3
    assert counts == {"ListObjectsV2": lists}
    store.delete(e.uri for e in listed)
    assert counts == {"ListObjectsV2": lists, "DeleteObjects": 3}
    assert list(store.list_files(base)) == []


@pytest.mark.slow
def test_s3_reopen_refuses_a_replaced_object(services: dict[str, str]) -> None:
    base = f"s3://{services['FMAPREP_S3_BUCKET']}/stores-etag-{uuid.uuid4().hex[:8]}"
    store = S3Store(_settings(services))
    uri = f"{base}/x"
    old, new = _payload(4 * MiB, seed=30), _payload(4 * MiB, seed=31)
    store.write_bytes(uri, old)
    with store.open_read(uri) as stream:
        assert stream.read(10) == old[:10]
        store.write_bytes(uri, new)
        stream.seek(3 * MiB)  # a reopen, as after a dropped connection
        with pytest.raises(stores.StoreError, match="replaced while being read"):
            stream.read(10)
    store.delete([uri])


@pytest.mark.slow
def test_hdfs_lists_with_one_request_per_directory_page(services: dict[str, str]) -> None:
    """LISTSTATUS_BATCH pages hold 1000 entries (dfs.ls.limit): 1001 files in ``a`` take two."""
    base = f"hdfs:///tmp/fmaprep-stores-list-{uuid.uuid4().hex[:8]}"
    store = open_store(base)
    assert isinstance(store, HDFSStore)
    uris = [f"{base}/a/{i:04d}.mp3" for i in range(1001)]
    uris += [f"{base}/b/{i}.mp3" for i in range(5)] + [f"{base}/top.mp3"]
    with ThreadPoolExecutor(4) as pool:  # empty files: no block, so no wait on close
        list(pool.map(lambda u: store.write_bytes(u, b""), uris))
    calls: list[str] = []
    hook = lambda response, **_: calls.append(response.url)  # noqa: E731
    store.http.hooks["response"].append(hook)
    try:
        assert sorted(e.uri for e in store.list_files(base)) == sorted(uris)
    finally:
        store.http.hooks["response"].remove(hook)
    assert len(calls) == 4, calls  # base, a (two pages), b
    assert all("op=LISTSTATUS_BATCH" in url for url in calls)
    assert "startAfter=0999.mp3" in calls[2]
    requests.delete(
        f"{services['FMAPREP_WEBHDFS_URL']}/webhdfs/v1{split_uri(base).path}",
        params={"op": "DELETE", "recursive": "true", "user.name": store.user},
        timeout=60,
    )


def test_hidden_names_count_below_input_only(root: tuple[Store, str]) -> None:
    """INPUT under `_staging/.cache/` (hidden-looking parents) lists its audio; below INPUT a
    `_` or `.` name hides the file or the whole directory, whatever the URI's spelling."""
    from fmaprep.storage.listing import list_inputs

    store, base = root
    top = f"{base}/_staging/.cache/input"
    visible = ["000/000001.mp3", "000/000002.mp3", "sub dir/000003.mp3"]
    hidden = ["_tmp/000004.mp3", ".partial/000005.mp3", "000/_000006.mp3", "000/.000007.mp3"]
    for i, name in enumerate(visible + hidden):
        store.write_bytes(f"{top}/{name}", _payload(50 + i, seed=i))
    settings = StoreSettings.from_env()  # FMAPREP_HDFS_URI: what hdfs:/// means
    if isinstance(store, S3Store):
        settings = dataclasses.replace(settings, s3=store.settings)
    for spelling in (top, top + "/"):
        got = [f.source for f in list_inputs(spelling, (".mp3",), settings)]
        expected_root = settings.full_uri(top)
        assert got == [f"{expected_root}/{name}" for name in visible], spelling
    store.delete([f"{top}/{name}" for name in visible + hidden])
