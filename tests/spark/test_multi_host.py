"""The job on a cluster of separate hosts on this machine (scripts/local-hosts.sh): a head host
(YARN ResourceManager, HDFS NameNode, S3) and three worker hosts (NodeManager + DataNode), each
its own network, PID and mount namespace, so an executor sees only what YARN localized for it.
Submitted in YARN cluster mode with the argument list EMR gets (scripts/submit-args.sh).

One cluster for the module (about a minute to start); a test that slows, cuts or kills a host
leaves the cluster to be made whole (``up`` again, ``heal-host``) before the next test that needs
it. Needs root and namespaces; skipped otherwise, with the reason. Several scenarios share one
YARN application where one run can prove them all (docs/multi-host.md lists what each test
shows, and how long the module takes).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fmaprep.audio.synth import music
from fmaprep.formats.records import read_records
from fmaprep.storage import webhdfs
from fmaprep.storage.clients import StoreSettings, open_store

from conftest import ROOT, local_reference, script_env, write_audio

pytestmark = [pytest.mark.slow]

HOSTS = ["bash", str(ROOT / "scripts" / "local-hosts.sh")]
WORKERS = ("w1", "w2", "w3")
SEED = 30  # the kill moments and victims below are drawn from it (printed on failure)
N_FILES = 18
PARTITIONS = ("--partitions", str(N_FILES))  # one task per file
ONE_ATTEMPT = ("spark.yarn.maxAppAttempts=1",)  # a refusal need not be tried twice
SPECULATION = ("spark.speculation=true", "spark.speculation.multiplier=2",
               "spark.speculation.quantile=0.5", "spark.speculation.interval=500ms")  # fmt: skip


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root: network, mount and PID namespaces"
    if not os.path.exists("/usr/bin/python3.11"):
        return "needs /usr/bin/python3.11 (the hosts' Python, as on EMR)"
    for tool in ("ip", "unshare", "nsenter", "curl", "mvn"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    # root in a container may still be refused namespaces (no CAP_SYS_ADMIN, seccomp)
    probe = ["unshare", "--net", "--mount", "--uts", "--pid", "--fork", "true"]
    if _run(probe, timeout=30).returncode != 0 or _run(["ip", "netns", "list"], 30).returncode:
        return "this machine cannot make network, mount and PID namespaces (unshare, ip netns)"
    return None


def _run(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, str]]:
    missing = _missing_tools()
    if missing:
        pytest.skip(missing)
    was_up = _run([*HOSTS, "status"], timeout=60).returncode == 0
    if not was_up:
        proc = _run([*HOSTS, "up", str(len(WORKERS))], timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:]
    env = {**os.environ, **script_env("local-hosts.sh")}
    env["PATH"] = f"{ROOT / 'scripts' / 'bin'}:{os.environ['PATH']}"
    # this process reads and writes the cluster's S3 with boto3's credential chain
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    try:
        yield env
        if was_up:
            _whole(env)  # leave a cluster that was there as it was found
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not was_up:
            _run([*HOSTS, "down"], timeout=300)


_broken: list[str] = []  # what a test did to the cluster, until the cluster is whole again


def _whole(hosts: dict[str, str]) -> None:
    """Bring back the hosts a test killed and end every slow-host and cut-host, when a test broke
    something: lazily, before the next test that uses the cluster (the last test's damage costs
    nothing when the module then takes it down). ``up`` starts only the missing hosts and
    returns once YARN runs each worker's NodeManager (a restarted one: after YARN declared the
    killed one lost)."""
    if not _broken:
        return
    proc = _run([*HOSTS, "up", str(len(WORKERS))], timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for worker in WORKERS:
        _host_cmd("heal-host", worker.removeprefix("w"))
    _broken.clear()


@pytest.fixture(scope="module")
def settings(hosts: dict[str, str]) -> StoreSettings:
    return StoreSettings.from_env(environ=hosts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multihost-corpus")
    for i in range(N_FILES):
        tid = f"{600 + i:06d}"
        sr = (44100, 22050, 48000)[i % 3]
        write_audio(root / tid[:3] / f"{tid}.mp3", music(6.0, sr, seed=300 + i), sr)
    return root


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The records local[2] makes of the corpus: what every cluster run must give."""
    out = tmp_path_factory.mktemp("multihost-local") / "out"
    local_reference(corpus, out)
    got = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}
    assert len(got) == N_FILES
    return got


def _upload(corpus: Path, base: str, settings: StoreSettings) -> str:
    store = open_store(base, settings)
    for path in sorted(corpus.rglob("*.mp3")):
        store.write_bytes(f"{base}/{path.relative_to(corpus)}", path.read_bytes())
    return base


@pytest.fixture(scope="module")
def hdfs_corpus(hosts: dict[str, str], corpus: Path, settings: StoreSettings) -> str:
    return _upload(corpus, f"{hosts['FMAPREP_HDFS_URI']}/multihost/in", settings)


@pytest.fixture(scope="module")
def s3_corpus(hosts: dict[str, str], corpus: Path, settings: StoreSettings) -> str:
    return _upload(corpus, f"s3://{hosts['FMAPREP_S3_BUCKET']}/multihost/in", settings)


@dataclass(frozen=True)
class Cluster:
    """What the tests use: the cluster's environment, its stores, the environment archive, the
    records local[2] makes of the corpus, and the corpus on HDFS."""

    hosts: dict[str, str]
    settings: StoreSettings
    archive: Path
    reference: dict[str, bytes]
    hdfs_in: str


@pytest.fixture(scope="module")
def cluster(
    hosts: dict[str, str],
    settings: StoreSettings,
    env_archive: Path,
    reference: dict[str, bytes],
    hdfs_corpus: str,
) -> Cluster:
    return Cluster(hosts, settings, env_archive, reference, hdfs_corpus)


def _out(cluster: Cluster, kind: str) -> str:
    hosts = cluster.hosts
    tag = uuid.uuid4().hex[:10]
    if kind == "s3":
        return f"s3://{hosts['FMAPREP_S3_BUCKET']}/multihost/out-{tag}"
    return f"{hosts['FMAPREP_HDFS_URI']}/multihost/out-{tag}"


# ------------------------------------------------------------------------------- submitting
@dataclass
class Job:
    """A finished ``local-hosts.sh submit``: its exit status and what it printed."""

    rc: int
    log: str

    @property
    def app(self) -> str:
        match = re.search(r"application_\d+_\d+", self.log)
        assert match, self.log[-3000:]
        return match.group(0)

    def ok(self) -> Job:
        assert self.rc == 0, self.log[-4000:]
        return self

    def error_line(self) -> str:
        """The one ``local-hosts: application_... failed: ...`` line of a failed submit."""
        assert self.rc != 0, self.log[-4000:]
        lines = [x for x in self.log.splitlines() if x.startswith("local-hosts: application_")]
        assert len(lines) == 1, self.log[-4000:]
        return lines[0]


def _submit_cmd(archive: Path | str, *args: str, conf: tuple[str, ...] = ()) -> list[str]:
    flags = [a for kv in conf for a in ("--conf", kv)]
    return [*HOSTS, "submit", "--archive", str(archive), *flags, *args]


def _submit(
    cluster: Cluster, *args: str, conf: tuple[str, ...] = (), archive: Path | None = None
) -> Job:
    """Submit to the whole cluster (with the environment archive unless ``archive`` is given)
    and wait for the application to end."""
    _whole(cluster.hosts)
    proc = _run(_submit_cmd(archive or cluster.archive, *args, conf=conf))
    return Job(proc.returncode, proc.stdout)


@dataclass
class Running:
    """An application submitted in the background, once YARN runs it."""

    proc: subprocess.Popen[str]
    app: str
    driver_host: str  # the worker host running its ApplicationMaster (the driver)

    def finish(self, timeout: float = 900) -> Job:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"the job hung: {out[-3000:]}") from None
        return Job(self.proc.returncode, out)


@contextmanager
def _running(cluster: Cluster, *args: str, conf: tuple[str, ...] = ()) -> Iterator[Running]:
    """Submit in the background; afterwards kill what is left of it and bring the cluster back
    whole before the next test (this one may kill, slow or cut a host)."""
    hosts = cluster.hosts
    _whole(hosts)
    proc = subprocess.Popen(
        _submit_cmd(cluster.archive, *args, conf=conf), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    app = ""
    try:
        app = _running_app(hosts, proc, 600)
        yield Running(proc, app, _am_host(hosts, app))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        _broken.append(app or "a submit")
        if app:
            _kill_app(hosts, app)


def _kill_app(hosts: dict[str, str], app: str) -> None:
    """End the application if it still runs (a failed test must not leave it to the next)."""
    state = _rm(hosts, f"/ws/v1/cluster/apps/{app}/state")["state"]
    if state in ("FINISHED", "FAILED", "KILLED"):
        return
    request = urllib.request.Request(
        f"{hosts['FMAPREP_YARN_RM_URL']}/ws/v1/cluster/apps/{app}/state?user.name=root",
        data=b'{"state": "KILLED"}', method="PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30):
        pass


# ------------------------------------------------------------------------------- reading
def _records(uri: str, settings: StoreSettings) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    for r in read_records(uri, settings=settings):
        assert r["track_id"] not in got, f"{r['track_id']} twice"
        got[r["track_id"]] = r["codes"].tobytes()
    return got


def _read(uri: str, settings: StoreSettings) -> bytes:
    with open_store(uri, settings).open_read(uri) as f:
        data: bytes = f.read()
    return data


def _manifest(uri: str, settings: StoreSettings) -> list[dict[str, Any]]:
    text = _read(f"{uri}/_manifest.jsonl", settings).decode()
    return [json.loads(line) for line in text.splitlines()]


def _statuses(manifest: list[dict[str, Any]]) -> dict[str, str]:
    """track id -> status, asserting each input has exactly one line."""
    got: dict[str, str] = {}
    for line in manifest:
        assert line["track_id"] not in got, f"{line['track_id']} twice in the manifest"
        status = line["status"]
        got[line["track_id"]] = line["error"].split(":")[0] if status == "error" else status
    return got


def _assert_whole(out: str, reference: dict[str, bytes], settings: StoreSettings) -> None:
    """OUTPUT holds every input once, ok, with the records local[2] makes."""
    assert _statuses(_manifest(out, settings)) == dict.fromkeys(reference, "ok")
    assert _records(out, settings) == reference


def _events(cluster: Cluster, app: str, attempt: int = 1) -> list[dict[str, Any]]:
    """Spark's event log of one application attempt (written to hdfs:///spark-events)."""
    uri = f"{cluster.hosts['FMAPREP_HDFS_URI']}/spark-events/{app}_{attempt}"
    return [json.loads(line) for line in _read(uri, cluster.settings).decode().splitlines()]


def _task_ends(events: list[dict[str, Any]], tasks: int) -> list[dict[str, Any]]:
    """The TaskEnd events of the stages with ``tasks`` tasks (the job's own stage)."""
    stages = {
        e["Stage Info"]["Stage ID"]
        for e in events
        if e["Event"] == "SparkListenerStageSubmitted"
        and e["Stage Info"]["Number of Tasks"] == tasks
    }
    return [e for e in events if e["Event"] == "SparkListenerTaskEnd" and e["Stage ID"] in stages]


# ------------------------------------------------------------------------------- watching
def _rm(hosts: dict[str, str], path: str) -> Any:
    with urllib.request.urlopen(f"{hosts['FMAPREP_YARN_RM_URL']}{path}", timeout=10) as r:
        return json.load(r)


def _running_app(hosts: dict[str, str], proc: subprocess.Popen[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the submit ended before its application ran"
        apps = (_rm(hosts, "/ws/v1/cluster/apps?states=RUNNING").get("apps") or {}).get("app")
        if apps:
            return str(apps[0]["id"])
        time.sleep(0.5)
    raise AssertionError("no application RUNNING")


def _am_attempts(hosts: dict[str, str], app: str) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = _rm(hosts, f"/ws/v1/cluster/apps/{app}/appattempts")[
        "appAttempts"
    ]["appAttempt"]
    return attempts


def _am_host(hosts: dict[str, str], app: str) -> str:
    return str(_am_attempts(hosts, app)[-1]["nodeHttpAddress"]).split(":")[0]


def _spark_api(hosts: dict[str, str], app: str, path: str) -> Any:
    """The running driver's REST API (the Spark UI) through YARN's web proxy."""
    url = f"{hosts['FMAPREP_YARN_RM_URL']}/proxy/{app}/api/v1/applications/{app}{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _active_tasks_by_host(hosts: dict[str, str], app: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ex in _spark_api(hosts, app, "/executors"):
        if ex["id"] != "driver":
            host = str(ex["hostPort"]).split(":")[0]
            counts[host] = counts.get(host, 0) + int(ex["activeTasks"])
    return counts


def _wait_task_phase(
    hosts: dict[str, str], app: str, tasks: int, timeout: float = 600
) -> dict[str, int]:
    """Wait until the job's own stage (``tasks`` tasks) runs; the active tasks by host."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stages = _spark_api(hosts, app, "/stages?status=active")
            if any(s["numTasks"] == tasks for s in stages):
                return _active_tasks_by_host(hosts, app)
        except (OSError, ValueError):
            pass  # the UI is not up yet
        time.sleep(0.3)
    raise AssertionError("the task phase did not start")


def _wait_tasks_done(
    hosts: dict[str, str], app: str, at_least: int, timeout: float = 600
) -> tuple[int, int]:
    """Wait until ``at_least`` tasks of the job's own stage are done: (done, running) then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stages = _spark_api(hosts, app, "/stages?status=active")
        stage = next((s for s in stages if s["numTasks"] == N_FILES), None)
        assert stage is not None, "the job's stage ended before the moment came"
        if int(stage["numCompleteTasks"]) >= at_least:
            return int(stage["numCompleteTasks"]), int(stage["numActiveTasks"])
        time.sleep(0.2)
    raise AssertionError(f"{at_least} tasks were not done in time")


def _busy_worker(
    hosts: dict[str, str], run: Running, rng: random.Random, timeout: float = 120
) -> str:
    """A worker host, not the driver's, running a task now (seeded choice among them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = _active_tasks_by_host(hosts, run.app)
        busy = sorted(h for h, n in counts.items() if n and h != run.driver_host)
        if busy:
            return rng.choice(busy)
        time.sleep(0.2)
    raise AssertionError("no worker other than the driver's was running a task")


def _strike(
    hosts: dict[str, str],
    run: Running,
    rng: random.Random,
    verb: str,
    *args: str,
    delay: tuple[float, float] = (0.0, 0.0),
) -> str:
    """Once the job's task phase runs (and a seeded delay in ``delay`` later), apply ``verb``
    (kill-host, slow-host, cut-host) to a worker host running a task, not the driver's: it."""
    _wait_task_phase(hosts, run.app, N_FILES)
    if delay[1]:
        time.sleep(rng.uniform(*delay))
    victim = _busy_worker(hosts, run, rng)
    _host_cmd(verb, victim.removeprefix("w"), *args)
    return victim


def _host_cmd(verb: str, *args: str) -> None:
    proc = _run([*HOSTS, verb, *args], timeout=120)
    assert proc.returncode == 0, proc.stdout


def _open_uploads(hosts: dict[str, str], uri: str) -> list[str]:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = boto3.client(
        "s3", endpoint_url=hosts["FMAPREP_S3_ENDPOINT"], region_name=hosts["AWS_DEFAULT_REGION"],
        aws_access_key_id=hosts["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=hosts["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    page = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/")
    return [u["Key"] for u in page.get("Uploads", [])]


def _probe_paths(env_archive: Path, tmp_path: Path) -> list[Path]:
    """Files this machine can read and no host of the cluster may: the repository's, its
    .venv's, the archive's source, the home directory's and one in this machine's /tmp."""
    marker = tmp_path / "only-here.txt"
    marker.write_text("the submitting machine's /tmp\n")
    paths = [
        ROOT / "pyproject.toml",
        ROOT / ".venv" / "pyvenv.cfg",
        env_archive,
        Path.home() / ".cache" / "fmaprep" / "hadoop-3.3.4" / "lib" / ".complete",
        marker,
    ]
    for path in paths:
        assert path.is_file(), path  # this machine can read each of them
    return paths


def _assert_ran_on_two_workers(ends: list[dict[str, Any]]) -> None:
    """The job's tasks succeeded on at least two worker hosts (and only on worker hosts)."""
    ran_on = {e["Task Info"]["Host"] for e in ends if e["Task End Reason"]["Reason"] == "Success"}
    assert len(ran_on) >= 2 and ran_on <= set(WORKERS), ran_on


def _assert_isolated(seen: dict[str, Any], paths: list[Path]) -> None:
    """What tests/spark/multihost_probe.py saw: neither the driver nor an executor could read
    any of ``paths``; all ran the archive's Python (linked to the nodes' python3.11); the
    executors ran on at least two worker hosts."""
    for view in [seen["driver"], *seen["executors"]]:
        assert view["readable"] == {str(p): False for p in paths}, view
        assert view["python"] == "/usr/bin/python3.11", view
    ran_on = {v["host"] for v in seen["executors"]}
    assert len(ran_on) >= 2 and ran_on <= set(WORKERS), ran_on


PROBE = ROOT / "tests" / "spark" / "multihost_probe.py"


# ------------------------------------------------------------------------------- the tests
# In this order: the hosts are broken only by the last tests (a killed host costs a restart and
# its NodeManager localizing the archive again), and the tiny wrong-python archive goes first
# (a submit deletes the HDFS copies of other archives).
def test_an_archive_for_another_python_fails_fast_with_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An archive built without --python-prefix links bin/python to this machine's own Python
    (pyenv, under the hidden home directory): the driver cannot even start; one line."""
    target = Path(sys.base_prefix) / "bin" / "python3.11"  # this machine's own Python
    if not target.is_relative_to(Path.home()) and not target.is_relative_to(ROOT):
        pytest.skip(f"{target} is not in a directory the hosts hide")
    archive = tmp_path / "wrong-python.tar.gz"
    cfg = f"home = {target.parent}\nversion = 3.11.7\n".encode()
    with tarfile.open(archive, "w:gz") as tar:  # what package-env without --python-prefix makes
        link = tarfile.TarInfo("bin/python")
        link.type, link.linkname = tarfile.SYMTYPE, str(target)
        tar.addfile(link)
        info = tarfile.TarInfo("pyvenv.cfg")
        info.size = len(cfg)
        tar.addfile(info, io.BytesIO(cfg))
    line = _submit(
        cluster, cluster.hdfs_in, _out(cluster, "hdfs"), conf=ONE_ATTEMPT, archive=archive
    ).error_line()
    assert "environment/bin/python" in line and "No such file" in line, line
    assert f"the archive's Python is {target.parent}/python3, which the hosts do not have" in line


def test_hdfs_input_on_three_hosts_equals_local_isolated_and_a_straggler_speculated(
    cluster: Cluster, tmp_path: Path
) -> None:
    """One application (tests/spark/multihost_probe.py, then the preprocess job in the same
    session): HDFS in, S3 out, spark.speculation on.

    Isolation: neither the driver nor any executor could read the repository, its .venv, the
    archive's source, the home directory or this machine's /tmp, and all ran
    /usr/bin/python3.11 through the archive. Equivalence: the records are local[2]'s, every
    input has one ok manifest line, and the event log shows the job's tasks succeeding on at
    least two worker hosts; the nodes' credentials are never logged.
    Straggler: when the task phase starts, a worker host running a task (not the driver's) is
    held to 5% of a CPU; Spark starts speculative copies of its tasks on the other hosts, and the
    commit names exactly one part per task (the other attempts' parts are neither published nor
    left under OUTPUT)."""
    paths = _probe_paths(cluster.archive, tmp_path)
    seen_uri = f"{_out(cluster, 'hdfs')}-probe"
    out = _out(cluster, "s3")
    args = ("--job", str(PROBE), seen_uri, *map(str, paths), "--", cluster.hdfs_in, out)
    with _running(cluster, *args, *PARTITIONS, conf=SPECULATION) as run:
        _strike(cluster.hosts, run, random.Random(SEED), "slow-host", "5")
        job = run.finish().ok()
    _assert_isolated(json.loads(_read(f"{seen_uri}/part-00000", cluster.settings)), paths)
    assert cluster.hosts["AWS_SECRET_ACCESS_KEY"] not in job.log
    _assert_whole(out, cluster.reference, cluster.settings)
    ends = _task_ends(_events(cluster, run.app), N_FILES)
    _assert_ran_on_two_workers(ends)
    assert any(e["Task Info"]["Speculative"] for e in ends), "no speculative attempt ran"
    commit = json.loads(_read(f"{out}/_SUCCESS", cluster.settings))
    names = [part["name"] for part in commit["parts"]]
    assert sorted(name.split("-")[1] for name in names) == [f"{i:05d}" for i in range(N_FILES)]
    assert sum(part["records"] for part in commit["parts"]) == N_FILES
    stored = {
        e.uri.removeprefix(f"{out}/") for e in open_store(out, cluster.settings).list_files(out)
    }
    assert {name for name in stored if name.startswith("part-")} == set(names)  # top level


def test_a_local_output_only_the_driver_has_is_refused_at_start(cluster: Cluster) -> None:
    """file:///tmp/... as OUTPUT: the driver (on one worker host) marks it, the executors on the
    other hosts cannot see the mark: one line, before any file is processed."""
    out = f"/tmp/fmaprep-multihost-{uuid.uuid4().hex[:8]}/out"
    line = _submit(cluster, cluster.hdfs_in, f"file://{out}", conf=ONE_ATTEMPT).error_line()
    assert f"fmaprep: OUTPUT {out}: on the driver's disk only, the executors on w" in line
    assert "cannot see it" in line


def test_executors_without_the_archive_fail_fast_with_one_line(cluster: Cluster) -> None:
    """The driver has the archive, the executors run the nodes' bare python3: the worker check
    fails before any task, naming the modules the workers lack."""
    conf = ("spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3", *ONE_ATTEMPT)
    started = time.monotonic()
    line = _submit(cluster, cluster.hdfs_in, _out(cluster, "hdfs"), conf=conf).error_line()
    assert re.search(r"fmaprep: workers cannot import [a-z0-9, ]*\bfmaprep\b", line), line
    assert "worker python: /usr/bin/python3" in line, line
    print(f"failed after {time.monotonic() - started:.0f} s: {line}")


def test_s3_input_equals_local_and_a_worker_cut_off_from_s3_leaves_lines_resume_completes(
    cluster: Cluster, s3_corpus: str, tmp_path: Path
) -> None:
    """S3 in, HDFS out. When the task phase starts, a worker host running a task loses its route
    to S3 (not to HDFS, where OUTPUT is, nor to YARN) for longer than the job: its reads stall,
    then fail; each of its files becomes one timeout or read_failed line (never a hang), the
    others are ok, and the tasks ran on at least two worker hosts. --mode resume afterwards
    completes exactly the failed ones: the records, read from S3 by the hosts, are local[2]'s.
    (Cut from OUTPUT's store too, its tasks fail as a whole and Spark reruns them on the other
    hosts: every file ok, nothing to resume.)"""
    config = tmp_path / "cut.toml"
    config.write_text("[pipeline]\ntimeout_s = 8\n")
    ship = (f"spark.yarn.dist.files={config}",)
    out = _out(cluster, "hdfs")
    args = (s3_corpus, out, "--config", config.name, *PARTITIONS)
    with _running(cluster, *args, "--max-error-rate", "1", conf=ship) as run:
        _strike(cluster.hosts, run, random.Random(SEED), "cut-host", "600", "s3")
        run.finish().ok()
    _assert_ran_on_two_workers(_task_ends(_events(cluster, run.app), N_FILES))
    first = _statuses(_manifest(out, cluster.settings))
    assert set(first) == set(cluster.reference)
    failed = {t for t, s in first.items() if s != "ok"}
    assert failed, "no file failed: the cut host ran none of the tasks"
    assert {first[t] for t in failed} <= {"timeout", "read_failed"}, first
    _submit(cluster, *args, "--mode", "resume", conf=ship).ok()
    _assert_whole(out, cluster.reference, cluster.settings)


def test_the_driver_host_killed_attempt_two_resumes(cluster: Cluster) -> None:
    """The host running the driver (YARN's ApplicationMaster) dies mid-run: YARN starts attempt 2
    on another host, which takes over attempt 1's lease and continues the run (default --mode
    error): every input once, the records local[2] makes, and it redoes at most the tasks that
    attempt 1 had not finished when the host died."""
    rng = random.Random(SEED + 1)
    out = _out(cluster, "s3")
    with _running(cluster, cluster.hdfs_in, out, *PARTITIONS) as run:
        _wait_task_phase(cluster.hosts, run.app, N_FILES)
        # a seeded moment once a few tasks are done (so that there is work to keep)
        done, active = _wait_tasks_done(cluster.hosts, run.app, rng.randint(3, 8))
        _host_cmd("kill-host", run.driver_host.removeprefix("w"))
        job = run.finish()
        assert job.rc == 0, job.log[-4000:]
    assert len(_am_attempts(cluster.hosts, run.app)) == 2
    _assert_whole(out, cluster.reference, cluster.settings)
    # attempt 2's own work (its run's parts): at most the tasks attempt 1 had not finished
    commit = json.loads(_read(f"{out}/_SUCCESS", cluster.settings))
    runs = sorted({part["name"].split("-")[2] for part in commit["parts"]})
    assert 1 <= len(runs) <= 2, runs  # attempt 1's finished parts are kept
    redone = sum(p["records"] for p in commit["parts"] if p["name"].split("-")[2] == runs[-1])
    print(f"driver on {run.driver_host} killed with {done} tasks done and {active} running; "
          f"attempt 2 processed {redone} of {N_FILES}")  # fmt: skip
    assert redone <= N_FILES - done, (redone, done)


def test_a_worker_host_killed_in_the_task_phase(cluster: Cluster) -> None:
    """A reclaimed spot node: at a seeded-random moment of the task phase, every process of a
    worker host that is running a task (not the driver's host) is SIGKILLed and its link goes
    down; its executor, its NodeManager and its DataNode (holding replicas of the HDFS input)
    vanish. The job finishes: every input once, the records local[2] makes, no multipart upload
    left open under OUTPUT, and the lost tasks were all on the killed host."""
    rng = random.Random(SEED)
    out = _out(cluster, "s3")
    with _running(cluster, cluster.hdfs_in, out, *PARTITIONS) as run:
        victim = _strike(cluster.hosts, run, rng, "kill-host", delay=(0.5, 3.0))
        job = run.finish()
        assert job.rc == 0, f"seed {SEED}, victim {victim}: {job.log[-4000:]}"
    _assert_whole(out, cluster.reference, cluster.settings)
    assert _open_uploads(cluster.hosts, out) == []
    lost = [e for e in _task_ends(_events(cluster, run.app), N_FILES)
            if e["Task End Reason"]["Reason"] == "ExecutorLostFailure"]  # fmt: skip
    assert lost and {e["Task Info"]["Host"] for e in lost} == {victim}, lost


def _datanodes_reading_to_here(hosts: dict[str, str]) -> set[str]:
    """The worker hosts with a DataNode HTTP connection (WebHDFS reads, port 9864) open to this
    machine now."""
    net = hosts["FMAPREP_HDFS_URI"].split("//")[1].rsplit(".", 1)[0]  # 10.231.ID
    ss = _run(["ss", "-tnH", "state", "established", "( dport = :9864 )"], timeout=30).stdout
    found = set()
    for match in re.finditer(rf"{re.escape(net)}\.(\d+):9864", ss):
        last = int(match.group(1))
        if 11 <= last < 11 + len(WORKERS):
            found.add(f"w{last - 10}")
    return found


def test_an_hdfs_read_whose_datanode_dies_is_finished_from_the_other_replica(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fmaprep's HDFS reader (what each task uses for its inputs) is streaming a 32 MB file (one
    block, two replicas) from a DataNode when that DataNode's host is killed: the read stalls,
    times out, reopens at its offset through the NameNode, which has marked the dead node stale
    (3 s) and redirects to the other replica; the bytes read are the file's, whole.

    Needs two live DataNodes, not the whole cluster: it runs last, after the previous test
    killed a worker (the NameNode writes the two replicas to the live ones), and costs no
    restart."""
    data = random.Random(SEED).randbytes(32 << 20)  # more than the sockets' buffers hold
    uri = f"{cluster.hosts['FMAPREP_HDFS_URI']}/multihost/replicated-{uuid.uuid4().hex[:8]}.bin"
    store = open_store(uri, cluster.settings)
    store.write_bytes(uri, data)
    # the dead host's connection stalls (its link is down): give up on it after 5 s, not 120
    monkeypatch.setattr(webhdfs, "HTTP_TIMEOUT", (5.0, 5.0))
    try:
        with store.open_read(uri) as f:
            head = f.read(1 << 20)
            serving = _datanodes_reading_to_here(cluster.hosts)
            assert len(serving) == 1, serving
            [victim] = serving
            _host_cmd("kill-host", victim.removeprefix("w"))
            rest = f.read()
        assert len(head) + len(rest) == len(data) and head + rest == data
    finally:
        _broken.append("a DataNode test")
        store.delete([uri])
