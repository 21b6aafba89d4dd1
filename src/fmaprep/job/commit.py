"""Committing OUTPUT: refuse or accept an existing one, what --mode resume keeps, and the swap.

The job builds everything in a hidden staging sibling, then renames it into place.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from fmaprep.config import Config
from fmaprep.formats.manifest import MANIFEST_FILE, STATS_FILE, library_versions, parse_manifest
from fmaprep.model import InputFile
from fmaprep.storage.hadoop_fs import HadoopFS
from fmaprep.storage.uris import StorageError, is_local, local_path, sibling

log = logging.getLogger(__name__)


def config_key(config: Config) -> str:
    """What must match for --mode resume: the pipeline settings and the versions of every
    library that touches the samples (Spark and Python do not)."""
    versions = {k: v for k, v in library_versions().items() if k not in ("pyspark", "python")}
    return config.pipeline.fingerprint(versions)


def resumable_lines(
    fs: HadoopFS, output_uri: str, config: Config, files: list[InputFile]
) -> list[dict[str, Any]]:
    """For --mode resume: the ok manifest lines of an existing output, after checking that it
    was made with the same config and libraries, and that none of its inputs changed since."""
    if not fs.exists(f"{output_uri}/{STATS_FILE}"):
        raise StorageError(
            f"{output_uri} is not a complete fmaprep output (no {STATS_FILE}); use --mode overwrite"
        )
    stats = json.loads(fs.read_bytes(f"{output_uri}/{STATS_FILE}"))
    if stats.get("config_key") != config_key(config):
        raise StorageError(
            f"{output_uri} was made with another pipeline config or library versions "
            f"(key {stats.get('config_key')}, now {config_key(config)}); use --mode overwrite"
        )
    manifest = parse_manifest(fs.read_bytes(f"{output_uri}/{MANIFEST_FILE}"))
    ok = {line["source"]: line for line in manifest if line["status"] == "ok"}

    def changed_since(f: InputFile) -> bool:
        line = ok.get(f.source)
        return line is not None and (line.get("bytes"), line.get("mtime")) != (f.size, f.mtime)

    changed = [f.source for f in files if changed_since(f)]
    if changed:
        raise StorageError(
            f"{len(changed)} input(s) changed since {output_uri} was made (first: {changed[0]}); "
            "their old records cannot be replaced in place: use --mode overwrite"
        )
    return list(ok.values())


def check_output(fs: HadoopFS, output_uri: str, mode: str) -> bool:
    """Whether OUTPUT exists; refuses an existing one unless the mode says what to do with it."""
    if is_local(output_uri):
        parent, _, name = local_path(output_uri).rstrip("/").rpartition("/")
        if os.path.isdir(parent or "/"):
            leftovers = sorted(
                n for n in os.listdir(parent or "/") if n.startswith(f".{name}.fmaprep-")
            )
            if leftovers:
                log.warning("left by interrupted runs (safe to delete): %s", ", ".join(leftovers))
    exists = fs.exists(output_uri)
    if exists and mode == "error":
        raise StorageError(
            f"output {output_uri} exists (use --mode overwrite to replace it, "
            "or --mode resume to add only what is missing)"
        )
    return exists


def commit_output(fs: HadoopFS, staging: str, output_uri: str, mode: str, run_tag: str) -> None:
    if mode == "resume" and fs.exists(output_uri):
        # add the new partitions under run-unique names, then swap in manifest and stats
        for name in fs.list_names(staging):
            if name.startswith("part-"):
                fs.rename(
                    f"{staging}/{name}", f"{output_uri}/part-{run_tag}-{name[len('part-') :]}"
                )
        for name in (MANIFEST_FILE, STATS_FILE):
            fs.delete(f"{output_uri}/{name}")
            fs.rename(f"{staging}/{name}", f"{output_uri}/{name}")
        fs.delete(staging)
        return
    if fs.exists(output_uri):
        if mode != "overwrite":
            raise StorageError(
                f"{output_uri} appeared while the job ran; new output left at {staging}"
            )
        old = sibling(output_uri, "old")
        fs.rename(output_uri, old)
        fs.rename(staging, output_uri)
        fs.delete(old)
    else:
        fs.rename(staging, output_uri)
