"""Crash injection for the replace tests: the process dies (``os._exit(137)``, as a kill would)
at the step of replacing ``000/000002.mp3`` on HDFS named by ``$FMAPREP_REPLACE_CRASH_AT``, by
wrapping the WebHDFS store's own calls in this interpreter. Put this directory on the command's
PYTHONPATH (tests/acquire/test_remote_replace.py); nothing of it is in ``src/``.

Steps: ``created`` (the new file's hidden temporary name, or its staging name, was just created
on the NameNode: no byte of it written yet), ``before-rename`` (every byte written, the rename
that publishes it not made), ``after-rename`` (published, nothing recorded about it yet).
"""

from __future__ import annotations

import os
from typing import Any

STEP = os.environ.pop("FMAPREP_REPLACE_CRASH_AT", "")
NAME = "000002.mp3"


def _wrap() -> None:
    from fmaprep.storage import webhdfs

    create, rename2 = webhdfs.HDFSStore._create_location, webhdfs.HDFSStore._rename2

    def create_location(self: Any, uri: str, path: str) -> str:
        location = create(self, uri, path)
        if STEP == "created" and NAME in path.rsplit("/", 1)[-1]:
            os._exit(137)
        return location

    def rename(self: Any, uri: str, src: str, dst: str, *, overwrite: bool) -> None:
        target = dst.endswith("/000/" + NAME)
        if target and STEP == "before-rename":
            os._exit(137)
        rename2(self, uri, src, dst, overwrite=overwrite)
        if target and STEP == "after-rename":
            os._exit(137)

    webhdfs.HDFSStore._create_location = create_location  # type: ignore[method-assign]
    webhdfs.HDFSStore._rename2 = rename  # type: ignore[method-assign]


if STEP:
    _wrap()
