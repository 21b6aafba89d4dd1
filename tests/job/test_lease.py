"""One writer per OUTPUT: the lease (docs/commit.md, "One writer at a time"), as a unit on local
disk, the loopback HDFS and an S3 server that implements conditional writes (moto's; s3proxy 2.6.0
ignores ``If-None-Match``): taken by exactly one of many racing runs, refused to a second run
with the holder's host, run id and time, taken over from a dead process, an expired holder or an
earlier attempt of the same YARN application, and fenced (a run that lost it knows)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fmaprep.job.lease import (
    Holder,
    Lease,
    LeaseFile,
    LeaseHeldError,
    LeaseLostError,
    _process_identity,
    current,
    yarn_attempt,
)
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.s3_settings import S3Settings
from fmaprep.storage.s3client import S3Store
from fmaprep.storage.stores import Store
from local_services_fixture import local_services  # noqa: F401 (the fixture)


@pytest.mark.parametrize(
    ("container", "want"),
    [
        ("container_1410901177871_0001_02_000001", ("application_1410901177871_0001", 2)),
        ("container_e17_1410901177871_0007_01_000001", ("application_1410901177871_0007", 1)),
        ("", (None, None)),
        ("container_garbage", (None, None)),
    ],
)
def test_yarn_attempt_from_the_container_id(
    container: str, want: tuple[str | None, int | None]
) -> None:
    assert yarn_attempt({"CONTAINER_ID": container}) == want


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on loopback (it refuses a PutObject with ``If-None-Match: *`` on an
    existing key with 412, as AWS S3 does); yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "hdfs", "s3-moto"])
def place(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Store, str]:
    """(store, an OUTPUT URI on it)."""
    import uuid

    tag = uuid.uuid4().hex[:8]
    if request.param == "local":
        return open_store(str(tmp_path)), str(tmp_path / "out")
    if request.param == "hdfs":
        env = request.getfixturevalue("local_services")
        settings = StoreSettings.from_env(environ=env)
        out = f"{env['FMAPREP_HDFS_URI']}/lease-{tag}"
        return open_store(out, settings), out
    url = request.getfixturevalue("moto_s3")
    for key, value in (("AWS_ACCESS_KEY_ID", "moto"), ("AWS_SECRET_ACCESS_KEY", "moto"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    store = S3Store(S3Settings(endpoint=url, path_style_access=True))
    store.client.create_bucket(Bucket=f"lease-{tag}")
    return store, f"s3://lease-{tag}/out"


def _holder(run: str, **changes: Any) -> Holder:
    return dataclasses.replace(Holder.here(run), **changes)


def _race(store: Store, out: str, round_: int) -> tuple[list[Lease], list[str]]:
    """Eight threads take the lease after one barrier: (leases taken, refusal lines)."""
    barrier = threading.Barrier(8)
    won: list[Lease] = []
    refused: list[str] = []

    def take(i: int) -> None:
        me = _holder(f"20261207T0900{round_:02d}Z{i:06x}")
        barrier.wait()
        try:
            won.append(Lease.take(store, out, me))
        except LeaseHeldError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, refused


def test_racing_runs_exactly_one_takes_the_lease(place: tuple[Store, str]) -> None:
    """Eight runs take one OUTPUT's lease at the same moment, five times over (a released lease
    is taken again): each time exactly one holds it, the others are refused naming it."""
    store, out = place
    for round_ in range(5):
        won, refused = _race(store, out, round_)
        assert len(won) == 1 and len(refused) == 7, (round_, refused)
        winner = won[0]
        assert winner.epoch == round_ + 1
        for line in refused:
            assert winner.holder.run in line or "was just taken" in line, line
        winner.check()
        winner.release()


def test_a_second_run_is_refused_naming_the_holder(place: tuple[Store, str]) -> None:
    store, out = place
    first = Lease.take(store, out, _holder("20261207T090000Z000001"))
    with pytest.raises(LeaseHeldError) as refused:
        Lease.take(store, out, _holder("20261207T090001Z000002"))
    line = str(refused.value)
    assert "\n" not in line
    for word in (first.holder.host, "run 20261207T090000Z000001", f"since {first.holder.since}"):
        assert word in line, line
    first.release()
    again = Lease.take(store, out, _holder("20261207T090002Z000003"))
    assert again.epoch == 2 and again.taken_over == "released"
    again.release()


def test_a_dead_holder_is_taken_over_and_fenced(place: tuple[Store, str]) -> None:
    """A holder whose process is gone (this host) is taken over at once, one on another host
    when it has not renewed for its ttl; a fresh one on another host is not. The run that lost
    the lease fails its check, so it neither commits nor deletes."""
    store, out = place
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = _holder("20261207T090000Z00000a", pid=child.pid, process=_process_identity(child.pid))
    child.kill()
    child.wait()
    first = Lease.take(store, out, gone)  # as the dead process took it
    second = Lease.take(store, out, _holder("20261207T090001Z00000b"))
    assert second.taken_over == "its process is gone" and second.previous == gone
    with pytest.raises(LeaseLostError, match="lost its lease"):
        first.check()
    with pytest.raises(LeaseLostError):
        first.renew()  # a zombie never writes over the new holder's file
    assert current(store, out).holder.run == second.holder.run  # type: ignore[union-attr]

    # another host: alive while it renews, dead once its ttl passed
    elsewhere = _holder("20261207T090002Z00000c", host="elsewhere.example", pid=1)
    lease = LeaseFile(second.epoch + 1, elsewhere, time.time(), 60.0, False)
    store.write_bytes(f"{out}/_fmaprep/lease-{lease.epoch:06d}.json", lease.to_bytes())
    with pytest.raises(LeaseHeldError, match=r"elsewhere\.example"):
        Lease.take(store, out, _holder("20261207T090003Z00000d"))
    with pytest.raises(LeaseLostError):
        second.check()
    stale = dataclasses.replace(lease, renewed=time.time() - 61)
    store.write_bytes(f"{out}/_fmaprep/lease-{lease.epoch:06d}.json", stale.to_bytes())
    third = Lease.take(store, out, _holder("20261207T090004Z00000e"))
    assert third.taken_over is not None and third.taken_over.startswith("not renewed for 6")
    third.release()


def test_a_later_attempt_of_the_same_application_takes_over(place: tuple[Store, str]) -> None:
    """YARN restarted the application master (attempt 2) while attempt 1's lease looks alive
    (another host, just renewed): attempt 2 takes over; another application, or the same
    attempt again, is refused."""
    store, out = place
    app = "application_1410901177871_0001"
    first = _holder("20261207T090000Z000001", host="core-1.example", pid=1, app=app, attempt=1)
    lease = LeaseFile(1, first, time.time(), 60.0, False)
    store.create_new(f"{out}/_fmaprep/lease-000001.json", lease.to_bytes())
    for other_app, attempt in ((app, 1), ("application_1410901177871_0002", 2)):
        with pytest.raises(LeaseHeldError):
            Lease.take(store, out, _holder("20261207T090001Z000002", app=other_app,
                                           attempt=attempt))  # fmt: skip
    second = Lease.take(store, out, _holder("20261207T090002Z000003", app=app, attempt=2))
    assert second.taken_over == "a later attempt of the same application"
    assert second.previous == first
    second.release()


def test_renewal_keeps_it_and_a_run_that_cannot_renew_stops(tmp_path: Path) -> None:
    store, out = open_store(str(tmp_path)), str(tmp_path / "out")
    lease = Lease.take(store, out, _holder("20261207T090000Z000001"), ttl=0.6).start(0.1)
    time.sleep(0.8)  # longer than the ttl: the renewals keep it
    with pytest.raises(LeaseHeldError):
        Lease.take(store, out, _holder("20261207T090001Z000002"))
    lease.check()
    lease._stop.set()  # renewals stop (as when the store is away)
    time.sleep(0.5)
    with pytest.raises(LeaseLostError, match="could not renew"):
        lease.check()
    lease.release()


def test_a_later_attempt_continues_as_a_resume_whatever_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 30's rule, as the job applies it: attempt 2 of the application that holds OUTPUT
    (its lease alive, on another host, with a killed run's work beside it) runs as --mode
    resume even when given --mode error or overwrite; another application is refused."""
    from fmaprep.job.run import take_output

    out = str(tmp_path / "out")
    store = open_store(out)
    app = "application_1410901177871_0001"
    first = _holder("20261207T090000Z000001", host="core-1.example", pid=1, app=app, attempt=1)
    store.create_new(f"{out}/_fmaprep/lease-000001.json",
                     LeaseFile(1, first, time.time(), 60.0, False).to_bytes())  # fmt: skip
    store.write_bytes(f"{out}/part-00000-{first.run}-a0abcdef", b"a killed task's part")
    settings = StoreSettings()
    monkeypatch.setenv("CONTAINER_ID", "container_1410901177871_0002_01_000001")  # another app
    with pytest.raises(LeaseHeldError, match=r"core-1\.example"):
        take_output(out, "overwrite", settings)
    monkeypatch.setenv("CONTAINER_ID", "container_e3_1410901177871_0001_02_000001")  # attempt 2
    for given in ("error", "overwrite"):
        lease, mode, _ = take_output(out, given, settings)  # type: ignore[arg-type]
        assert mode == "resume" and lease.holder.app == app and lease.holder.attempt == 2
        lease.release()
        # the next try sees attempt 2's released lease, not attempt 1's: put attempt 1 back
        store.write_bytes(
            f"{out}/_fmaprep/lease-{lease.epoch + 1:06d}.json",
            LeaseFile(lease.epoch + 1, first, time.time(), 60.0, False).to_bytes(),
        )
