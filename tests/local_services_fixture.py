"""The session fixture that starts scripts/local-services.sh for the storage tests.

Imported by tests/test_local_services.py and tests/test_check_storage.py (not a conftest, so it
merges cleanly with the suite's own conftest.py). The first use runs ``up`` (which fetches the
jars the first time), every later use reuses it, and ``down`` runs at the end of the session
unless the services were already running before the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "local-services.sh"
CHECK = ROOT / "scripts" / "check-storage.sh"
_STATE: dict[str, dict[str, str]] = {}


def _ports_free(base: int) -> bool:
    for port in range(base, base + 6):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def services_env() -> dict[str, str]:
    """os.environ plus the exports that ``local-services.sh env`` prints."""
    out = run(["bash", str(SERVICES), "env"]).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        assert line.startswith("export "), line
        key, _, value = line[len("export ") :].partition("=")
        value = shlex.split(value)[0]
        env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


def services_up(env: dict[str, str] | None = None) -> None:
    proc = run(["bash", str(SERVICES), "up"], env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def local_services() -> Iterator[dict[str, str]]:
    if "env" in _STATE:
        yield _STATE["env"]
        return
    already = run(["bash", str(SERVICES), "status"]).returncode == 0
    env = dict(os.environ)
    if not already and "FMAPREP_PORT_BASE" not in env:
        # Another checkout may run its own services: take the first free block of ports,
        # starting from the one this checkout used last time.
        saved = ROOT / ".services" / "ports.env"
        base = 29100
        if saved.exists():
            found = re.search(r"^SAVED_PORT_BASE=(\d+)$", saved.read_text(), re.MULTILINE)
            base = int(found.group(1)) if found else base
        while not _ports_free(base) and base < 29900:
            base += 10
        env["FMAPREP_PORT_BASE"] = str(base)
    services_up(env)
    _STATE["env"] = services_env()
    try:
        yield _STATE["env"]
    finally:
        if not already:
            run(["bash", str(SERVICES), "down"])


def s3(env: dict[str, str]) -> Any:
    """A boto3 client for the local S3 server, with the keys from ``env`` (not os.environ)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=env["FMAPREP_S3_ENDPOINT"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@pytest.fixture
def services_environ(
    local_services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """``local_services``, with its credentials and addresses also in this process's environment
    (boto3's credential chain and the WebHDFS client read them there), for tests that read the
    stores in-process."""
    for key in ("FMAPREP_HDFS_URI", "FMAPREP_WEBHDFS_URL", "FMAPREP_S3_ENDPOINT",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.setenv(key, local_services[key])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return local_services
