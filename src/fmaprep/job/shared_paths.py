"""Local paths under a cluster master: can the executors see what the driver sees?

With ``spark://``, ``yarn`` or ``k8s`` the tasks run on other machines. A ``file://`` INPUT there
would be read from each node's own disk, and a ``file://`` OUTPUT written to each node's own
disk while the driver commits a ``_SUCCESS`` that names parts it cannot see. Both work only when
every node mounts the same filesystem (one machine, NFS, EFS). The driver marks each local path
(the INPUT root as it is; for OUTPUT a unique empty file beside it, removed after the check), and
the worker probe (:mod:`fmaprep.spark.workerenv`) reports the marks it cannot see.
"""

from __future__ import annotations

import contextlib
import glob
import os
import uuid
from collections.abc import Iterator

from fmaprep.storage.listing import glob_root
from fmaprep.storage.uris import is_local, local_path

MARK_PREFIX = ".fmaprep-visible-"


def _existing_ancestor(path: str) -> str:
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


@contextlib.contextmanager
def local_marks(input_uri: str, output_uri: str) -> Iterator[dict[str, tuple[str, str]]]:
    """``{"INPUT"|"OUTPUT": (the path as the user gave it, a path every executor must see)}``
    for the local ones; an OUTPUT mark exists only inside the ``with``."""
    marks: dict[str, tuple[str, str]] = {}
    if is_local(input_uri):
        path = local_path(input_uri)
        marks["INPUT"] = (path, glob_root(path) if glob.has_magic(path) else path)
    created = None
    if is_local(output_uri):
        path = local_path(output_uri)
        candidate = os.path.join(_existing_ancestor(path), MARK_PREFIX + uuid.uuid4().hex)
        try:
            with open(candidate, "x"):
                created = candidate
            marks["OUTPUT"] = (path, candidate)
        except OSError:
            pass  # an unwritable place: the job itself says so when it writes there
    try:
        yield marks
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.remove(created)
