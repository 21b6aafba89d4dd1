"""One writer per OUTPUT: the lease (docs/commit.md, "One writer at a time").

The lease is ``OUTPUT/_fmaprep/lease-<epoch>.json``; the holder is the run whose file has the
highest epoch and is neither released nor dead. A run takes it by creating the next epoch's file
with the store's create-if-absent (local disk: ``link``; HDFS: rename2 NONE; S3: PutObject with
``If-None-Match: *``), so of two runs that try at once exactly one wins. The holder rewrites its
file every ``RENEW_S`` seconds; a holder is dead when its file was not renewed for ``TTL_S``
seconds (its host's clock), or at once when it ran on this host and its process is gone, or
when a later attempt of the same YARN application asks (the earlier attempt is over). Before
the commit and before the clean-up the holder checks (fencing) that no later epoch exists, that
its file still names it, and that its last renewal is recent: a run that lost the lease stops
without committing or deleting anything.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from fmaprep.job.ownership import CONTROL_DIR, owned
from fmaprep.storage.stores import Store
from fmaprep.storage.uris import StorageError

log = logging.getLogger(__name__)

TTL_S = 60.0  # a holder not heard from for this long is dead
RENEW_S = 10.0


class LeaseHeldError(StorageError):
    """Another live run holds OUTPUT."""


class LeaseLostError(StorageError):
    """This run no longer holds OUTPUT (another run took it, or renewals failed too long)."""


def _process_identity(pid: int) -> str | None:
    """``<pid namespace inode>:<start time in ticks>`` of a process on this host: a pid reused
    by another process, or seen from another pid namespace, is a different identity."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        namespace = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except (OSError, IndexError):
        return None
    return f"{namespace}:{int(fields[19])}"  # field 22 of stat(5), after "pid (comm)"


@dataclass(frozen=True)
class Holder:
    """Who writes OUTPUT: a run (its id is the generation id) on a host, in a process, maybe
    as one attempt of a YARN application."""

    run: str
    host: str
    pid: int
    process: str | None
    since: str  # UTC, ISO 8601
    app: str | None = None  # YARN application id (application_<cluster ts>_<n>)
    attempt: int | None = None

    @classmethod
    def here(cls, run: str, app: str | None = None, attempt: int | None = None) -> Holder:
        pid = os.getpid()
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return cls(run, socket.gethostname(), pid, _process_identity(pid), since, app, attempt)

    def describe(self) -> str:
        app = f", {self.app} attempt {self.attempt}" if self.app else ""
        return f"run {self.run} on host {self.host} (pid {self.pid}{app}) since {self.since}"


def yarn_attempt(environ: dict[str, str] | None = None) -> tuple[str | None, int | None]:
    """(YARN application id, attempt number) of this process when it is a YARN application
    master's container (cluster deploy mode: EMR steps, spark-submit --deploy-mode cluster):
    ``CONTAINER_ID=container[_e<epoch>]_<cluster ts>_<app>_<attempt>_<container>``."""
    env = os.environ if environ is None else environ
    parts = env.get("CONTAINER_ID", "").split("_")
    if parts and parts[0] == "container" and len(parts) >= 5:
        if parts[1].startswith("e"):
            parts = [parts[0], *parts[2:]]
        try:
            return f"application_{parts[1]}_{parts[2]}", int(parts[3])
        except (ValueError, IndexError):
            return None, None
    return None, None


@dataclass(frozen=True)
class LeaseFile:
    epoch: int
    holder: Holder
    renewed: float  # the holder's wall clock, seconds since the epoch
    ttl: float
    released: bool

    def to_bytes(self) -> bytes:
        doc = {**asdict(self.holder), "epoch": self.epoch, "renewed": self.renewed,
               "ttl": self.ttl, "released": self.released}  # fmt: skip
        return (json.dumps(doc, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, epoch: int) -> LeaseFile | None:
        try:
            doc = json.loads(data)
            holder = Holder(str(doc["run"]), str(doc["host"]), int(doc["pid"]), doc.get("process"),
                            str(doc["since"]), doc.get("app"), doc.get("attempt"))  # fmt: skip
            return cls(epoch, holder, float(doc["renewed"]), float(doc["ttl"]),
                       bool(doc.get("released")))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None  # torn or foreign: treated as dead once its file is old (see _current)

    def dead_because(self, me: Holder, now: float) -> str | None:
        """Why the holder is no longer alive, or None when it may be."""
        other = self.holder
        if self.released:
            return "released"
        if other.app and other.app == me.app and (me.attempt or 0) > (other.attempt or 0):
            return "a later attempt of the same application"
        here = other.host == socket.gethostname() and other.process is not None
        if here and _process_identity(other.pid) != other.process:
            return "its process is gone"
        if now > self.renewed + self.ttl:
            return f"not renewed for {now - self.renewed:.0f} s"
        return None


def lease_dir(output: str) -> str:
    return f"{output.rstrip('/')}/{CONTROL_DIR}"


def _epochs(store: Store, output: str) -> dict[int, tuple[str, float | None]]:
    """epoch -> (lease file URI, its mtime)."""
    prefix = output.rstrip("/") + "/"
    found = {}
    for entry in store.list_files(lease_dir(output)):
        what = owned(entry.uri[len(prefix) :]) if entry.uri.startswith(prefix) else None
        if what is not None and what.kind == "lease" and what.epoch is not None:
            found[what.epoch] = (entry.uri, entry.mtime)
    return found


def current(store: Store, output: str) -> LeaseFile | None:
    """The newest lease file of OUTPUT, or None. One that cannot be parsed (a torn write by a
    store without atomic replace, or a stranger's file) counts as a released lease."""
    epochs = _epochs(store, output)
    if not epochs:
        return None
    epoch = max(epochs)
    try:
        data = store.read_bytes(epochs[epoch][0])
    except FileNotFoundError:
        return None
    lease = LeaseFile.parse(data, epoch)
    if lease is None:
        unknown = Holder("?", "?", 0, None, "?")
        return LeaseFile(epoch, unknown, 0.0, 0.0, True)
    return lease


def refuse_if_held(store: Store, output: str, me: Holder) -> LeaseFile | None:
    """The current lease file; LeaseHeldError when a live run holds it."""
    lease = current(store, output)
    if lease is not None and lease.dead_because(me, time.time()) is None:
        raise LeaseHeldError(_held_line(output, lease))
    return lease


def _held_line(output: str, lease: LeaseFile) -> str:
    ago = time.time() - lease.renewed
    return (
        f"output {output} is being written by another fmaprep {lease.holder.describe()} "
        f"(renewed {ago:.0f} s ago); nothing was done. Rerun when it has finished, or "
        f"{lease.ttl:.0f} s after it last renewed if that run is dead"
    )


class Lease:
    """A held lease: renewed from a thread while the run lives, checked before the commit and
    the clean-up, released at the end."""

    def __init__(self, store: Store, output: str, holder: Holder, epoch: int, ttl: float) -> None:
        self.store, self.output, self.holder = store, output.rstrip("/"), holder
        self.epoch, self.ttl = epoch, ttl
        self.taken_over: str | None = None  # why the previous holder counted as dead
        self.previous: Holder | None = None
        self._renewed = self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None

    @property
    def uri(self) -> str:
        return f"{lease_dir(self.output)}/lease-{self.epoch:06d}.json"

    @classmethod
    def take(cls, store: Store, output: str, holder: Holder, ttl: float = TTL_S) -> Lease:
        """Take OUTPUT's lease, or raise LeaseHeldError naming the live holder."""
        previous = refuse_if_held(store, output, holder)
        epoch = previous.epoch + 1 if previous else 1
        lease = cls(store, output, holder, epoch, ttl)
        if previous is not None:
            lease.taken_over = previous.dead_because(holder, time.time())
            lease.previous = previous.holder
        try:
            store.create_new(lease.uri, lease._file(released=False).to_bytes())
        except FileExistsError:  # another run took this epoch first
            winner = current(store, output)
            line = _held_line(output, winner) if winner else f"output {output} was just taken"
            raise LeaseHeldError(line) from None
        lease._renewed = time.monotonic()
        lease.check()  # a store that ignores If-None-Match: the later writer wins, we see it
        if previous is not None and not previous.released:
            log.warning("took over %s from %s (%s)", output, previous.holder.describe(),
                        lease.taken_over)  # fmt: skip
        return lease

    def _file(self, released: bool) -> LeaseFile:
        return LeaseFile(self.epoch, self.holder, time.time(), self.ttl, released)

    def start(self, interval: float = RENEW_S) -> Lease:
        self._thread = threading.Thread(
            target=self._renew_loop, args=(interval,), name="fmaprep-lease", daemon=True
        )
        self._thread.start()
        return self

    def _renew_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LeaseLostError as exc:
                self._lost = str(exc)
                log.error("%s", exc)
                return
            except Exception as exc:  # the store is away (any client's error): the run
                log.warning("could not renew the lease on %s: %s", self.output, exc)  # notices
                # at its next check, which needs a renewal less than half a ttl old

    def renew(self) -> None:
        self.check(fresh=False)
        self.store.write_bytes(self.uri, self._file(released=False).to_bytes())
        self._renewed = time.monotonic()

    def check(self, fresh: bool = True) -> None:
        """Fencing: raise LeaseLostError unless this run still holds OUTPUT (no later epoch,
        our file names us, and with ``fresh`` our last renewal is recent enough that no other
        run can have seen it expire)."""
        if self._lost:
            raise LeaseLostError(self._lost)
        newest = current(self.store, self.output)
        if newest is None or newest.epoch != self.epoch or newest.holder.run != self.holder.run:
            other = f"; now {newest.holder.describe()}" if newest and newest.epoch else ""
            raise LeaseLostError(
                f"output {self.output}: this run ({self.holder.run}) lost its lease{other}"
            )
        if fresh and time.monotonic() - self._renewed > self.ttl / 2:
            raise LeaseLostError(
                f"output {self.output}: this run could not renew its lease for "
                f"{time.monotonic() - self._renewed:.0f} s (another run may have taken it)"
            )

    def release(self) -> None:
        """Stop renewing and mark the file released (the next run takes the next epoch at once).
        Never raises: a lease left behind expires on its own."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            newest = current(self.store, self.output)
            if newest is None or newest.epoch != self.epoch:
                return
            try:
                self.store.write_bytes(self.uri, self._file(released=True).to_bytes())
            except OSError:  # a full disk: deleting our file frees the lease as well
                self.store.delete([self.uri])
        except OSError as exc:
            log.warning("could not release the lease on %s (it expires in %.0f s): %s",
                        self.output, self.ttl, exc)  # fmt: skip

    def record(self, mode: str) -> dict[str, Any]:
        """This run's record (``_fmaprep/run-<run>.json``): what makes its files known."""
        return {**asdict(self.holder), "epoch": self.epoch, "mode": mode}
