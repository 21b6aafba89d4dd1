"""One URI parser, one meaning of "local", one error family: every spelling of a location goes
through ``fmaprep.storage.uris``, and what it refuses is a StorageError the commands turn into
one line (and a ValueError, for the readers that catch bad values)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmaprep.formats.records import read_records
from fmaprep.storage.clients import open_store
from fmaprep.storage.uris import (
    BadURIError,
    StorageError,
    is_local,
    is_s3,
    local_path,
    resolve_uri,
    split_uri,
)


@pytest.mark.parametrize(
    ("where", "local"),
    [
        ("/data/in", True),
        ("rel/in", True),
        ("/data/odd://name", True),  # a path that exists is that path, "://" and all
        ("file:/data/in", True),
        ("file:///data/in", True),
        ("FILE://localhost/data/in", True),
        ("C:/data/in", True),  # a one-letter "scheme" is a drive
        ("s3://b/in", False),
        ("s3a://b/in", False),
        ("hdfs:///in", False),
        ("gs://b/in", False),
    ],
)
def test_local_has_one_meaning(where: str, local: bool) -> None:
    assert is_local(where) is local
    # the parser agrees wherever it has a client
    if not where.startswith("gs:"):
        assert (split_uri(where).kind == "file") is local


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/x/a b#1?.mp3", "/x/a b#1?.mp3"),
        ("file:/x/a", "/x/a"),
        ("file:///x/a", "/x/a"),
        ("file://localhost/x/a", "/x/a"),
    ],
)
def test_local_path_of_every_spelling(uri: str, path: str) -> None:
    assert local_path(uri) == path


def test_s3_is_every_s3_scheme() -> None:
    assert all(is_s3(u) for u in ("s3://b/k", "s3a://b/k", "S3N://b/k"))
    assert not any(is_s3(u) for u in ("/s3://b", "hdfs:///k", "file:/s3"))


def test_resolution_keeps_remote_uris_and_makes_local_ones_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_uri("s3a://b/in") == "s3a://b/in"
    assert resolve_uri("hdfs:///in") == "hdfs:///in"
    assert resolve_uri("in") == f"file://{tmp_path}/in"
    assert resolve_uri("file:in") == f"file://{tmp_path}/in"
    assert resolve_uri("file://localhost/x") == "file:///x"
    assert resolve_uri("sub/odd://name") == "file://" + os.path.abspath("sub/odd://name")
    # a scheme fmaprep has no client for stays a URI, refused where it is opened
    assert resolve_uri("gs://b/in") == "gs://b/in"


@pytest.mark.parametrize(
    ("refuse", "says"),
    [
        (lambda: split_uri("gs://b/x"), "no client for gs://"),
        (lambda: open_store("gs://b/x"), "no client for gs://"),
        (lambda: local_path("file://otherhost/x"), "no host"),
        (lambda: next(read_records("file://otherhost/out")), "no host"),
        (lambda: split_uri("s3:///k"), "not a bucket name"),
        (lambda: open_store("/tmp").stat("s3://b/k"), "not a local path"),  # a store's own kind
        (lambda: split_uri("file:/x", "hdfs"), "not an HDFS URI"),
    ],
)
def test_what_the_parser_refuses_is_one_error_family(refuse: object, says: str) -> None:
    with pytest.raises(BadURIError, match=says) as caught:
        refuse()  # type: ignore[operator]
    assert isinstance(caught.value, StorageError) and isinstance(caught.value, ValueError)


def test_the_cli_says_a_bad_uri_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the job's log file goes there
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", "gs://b/in", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("fmaprep: gs://b/in: unsupported scheme 'gs'")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out")
