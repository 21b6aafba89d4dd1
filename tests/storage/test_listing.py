"""INPUT is what the user named: a path that exists is that path, never a pattern; patterns
only when nothing has that name; no symlink loop is walked and no file is listed twice; a
dangling link is listed (its task reports it). Real files, links and hard links on disk."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.listing import list_inputs, list_local_inputs
from fmaprep.storage.s3_settings import S3Settings
from local_services_fixture import local_services

__all__ = ["local_services"]

EXT = (".mp3", ".wav")


def _names(uri: str, root: Path) -> list[str]:
    return [os.path.relpath(f.source, root) for f in list_local_inputs(uri, EXT)]


def _touch(path: Path, data: bytes = b"\xff\xfbdata") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["take[1].mp3", "take?.mp3", "take*.mp3", "[!x]y.mp3",
                                  "a[b-c].mp3", "**.mp3"])  # fmt: skip
def test_an_existing_file_with_glob_characters_is_that_file(tmp_path: Path, name: str) -> None:
    _touch(tmp_path / name)
    for other in ("take1.mp3", "takeX.mp3", "by.mp3", "ab.mp3", "x.mp3"):
        _touch(tmp_path / other)  # what the name would match as a pattern
    for uri in (str(tmp_path / name), f"file://{tmp_path / name}"):
        assert _names(uri, tmp_path) == [name]


@pytest.mark.parametrize("folder", ["album [2024]", "live?", "b*sides", "[x]"])
def test_an_existing_folder_with_glob_characters_is_that_folder(
    tmp_path: Path, folder: str
) -> None:
    _touch(tmp_path / folder / "000002.mp3")
    _touch(tmp_path / "album 2" / "000003.mp3")  # what "album [2024]" matches as a pattern
    for uri in (
        str(tmp_path / folder),
        f"file://{tmp_path / folder}",
        str(tmp_path / folder) + "/",
    ):
        assert _names(uri, tmp_path) == [f"{folder}/000002.mp3"]
    # a pattern below such a folder: the folder is literal, the rest is the pattern
    assert _names(str(tmp_path / folder / "*.mp3"), tmp_path) == [f"{folder}/000002.mp3"]


def test_patterns_when_nothing_has_the_name(tmp_path: Path) -> None:
    for rel in ("a/1.mp3", "a/b/2.mp3", "a/b/c/3.wav", "x1.mp3", "x2.mp3", "xy.mp3", "a/_h/4.mp3"):
        _touch(tmp_path / rel)
    assert _names(str(tmp_path / "x?.mp3"), tmp_path) == ["x1.mp3", "x2.mp3", "xy.mp3"]
    assert _names(str(tmp_path / "x[!1].mp3"), tmp_path) == ["x2.mp3", "xy.mp3"]
    assert _names(str(tmp_path / "x[0-9].*"), tmp_path) == ["x1.mp3", "x2.mp3"]
    assert _names(str(tmp_path / "a" / "*.mp3"), tmp_path) == ["a/1.mp3"]  # * stays in a name
    assert _names(str(tmp_path / "a" / "**" / "*.mp3"), tmp_path) == ["a/1.mp3", "a/b/2.mp3"]
    assert _names(f"file://{tmp_path}/*/b/**", tmp_path) == ["a/b/2.mp3", "a/b/c/3.wav"]
    assert _names(str(tmp_path / "nothing*.mp3"), tmp_path) == []


def _list_within(uri: str, seconds: float = 20.0) -> list[str]:
    """The listing, failing (not hanging) when it does not end in ``seconds``."""
    got: list[list[str]] = []
    worker = threading.Thread(
        target=lambda: got.append([f.source for f in list_local_inputs(uri, EXT)]), daemon=True
    )
    worker.start()
    worker.join(seconds)
    assert got, f"listing {uri} did not end within {seconds} s"
    return got[0]


@pytest.mark.parametrize("shape", ["self", "parent", "two", "mutual", "chain"])
def test_symlink_loops_are_never_walked(tmp_path: Path, shape: str) -> None:
    root = tmp_path / "in"
    song = _touch(root / "d" / "000002.mp3")
    if shape == "self":
        (root / "d" / "me").symlink_to(root / "d")
    elif shape == "parent":
        (root / "d" / "up").symlink_to(root)
    elif shape == "two":  # two loops: a walk that follows them grows exponentially
        (root / "d" / "up").symlink_to(root)
        (root / "d" / "again").symlink_to(root / "d")
    elif shape == "mutual":
        (root / "e").mkdir()
        (root / "d" / "to_e").symlink_to(root / "e")
        (root / "e" / "to_d").symlink_to(root / "d")
    else:  # a loop of file links: a name that never resolves
        (root / "d" / "a.mp3").symlink_to(root / "d" / "b.mp3")
        (root / "d" / "b.mp3").symlink_to(root / "d" / "a.mp3")
    for uri in (str(root), str(root / "**" / "*.mp3"), str(root / "*" / "**")):
        got = _list_within(uri)
        assert got.count(str(song)) == 1, got
        assert len(got) == len(set(got)) == (3 if shape == "chain" else 1), got


def test_a_file_is_listed_once_whatever_links_reach_it(tmp_path: Path) -> None:
    song = _touch(tmp_path / "in" / "000002.mp3")
    (tmp_path / "in" / "000003.mp3").symlink_to(song)
    (tmp_path / "in" / "000001.mp3").symlink_to(tmp_path / "in" / "000003.mp3")  # a chain
    _touch(tmp_path / "out" / "000009.mp3")
    (tmp_path / "in" / "000005.mp3").symlink_to(tmp_path / "out" / "000009.mp3")
    # a hard link is a name of its own (the 12 h benchmark corpus is hard links)
    os.link(song, tmp_path / "in" / "000004.mp3")
    assert _names(str(tmp_path / "in"), tmp_path / "in") == [
        "000001.mp3", "000004.mp3", "000005.mp3"
    ]  # fmt: skip


def test_a_dangling_link_is_listed_for_its_task_to_report(tmp_path: Path) -> None:
    _touch(tmp_path / "in" / "000002.mp3")
    (tmp_path / "in" / "000003.mp3").symlink_to(tmp_path / "gone.mp3")
    files = list_local_inputs(str(tmp_path / "in"), EXT)
    assert [(os.path.basename(f.source), f.size) for f in files] == [
        ("000002.mp3", 6), ("000003.mp3", 0)
    ]  # fmt: skip
    # named as INPUT itself: the path, not "does not exist"
    assert [f.size for f in list_local_inputs(str(tmp_path / "in" / "000003.mp3"), EXT)] == [0]


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["s3", "hdfs"])
def test_remote_names_with_glob_characters_are_those_names(
    local_services: dict[str, str], monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """On S3 and HDFS too: a key or folder that exists is taken as named, never as a pattern."""
    for key in ("FMAPREP_HDFS_URI", "FMAPREP_WEBHDFS_URL", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.setenv(key, local_services[key])
    settings = StoreSettings(s3=S3Settings(endpoint=local_services["FMAPREP_S3_ENDPOINT"],
                                           path_style_access=True))  # fmt: skip
    run = uuid.uuid4().hex[:8]
    base = (f"s3a://{local_services['FMAPREP_S3_BUCKET']}/listing-{run}" if scheme == "s3"
            else f"{local_services['FMAPREP_HDFS_URI']}/tmp/listing-{run}")  # fmt: skip
    store = open_store(base, settings)
    for rel in ("take[1].mp3", "take1.mp3", "album [2024]/000002.mp3", "album 2/000003.mp3"):
        store.write_bytes(f"{base}/{rel}", b"\xff\xfbdata")

    def listed(uri: str) -> list[str]:
        return [f.source[len(base) + 1 :] for f in list_inputs(uri, EXT, settings)]

    assert listed(f"{base}/take[1].mp3") == ["take[1].mp3"]
    assert listed(f"{base}/album [2024]") == ["album [2024]/000002.mp3"]
    assert listed(f"{base}/take?.mp3") == ["take1.mp3"]  # nothing has that name: a pattern
