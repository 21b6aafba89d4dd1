"""No secret lands beside the data or in a log: a planted credential (a Spark conf secret, the
AWS secret in the environment, a presigned download URL) is searched for in every file the
scraper and the job write, in what inspect and report write, and in everything they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from acquire.conftest import FakeFMA, FakeTrack, serve, tones
from fmaprep.redaction import redact, redact_text, strip_signed_query

__all__ = ["serve", "tones"]  # the fixtures, re-exported for pytest

SIGNATURE = "PLANTEDSIGNATURE0123456789abcdef"
SPARK_SECRET = "PLANTEDSPARKSECRET42"
ENV_SECRET = "PLANTEDENVSECRET77"
PLANTED = (SIGNATURE, SPARK_SECRET, ENV_SECRET)


def _run(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "fmaprep", "-v", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=600)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _leaks(root: Path, printed: str) -> list[str]:
    found = [f"printed: {s}" for s in PLANTED if s in printed]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in PLANTED if s.encode() in data]
    return found


@pytest.mark.slow
def test_no_planted_secret_in_any_file_or_log(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    tracks = [FakeTrack(1, tones[0]), FakeTrack(2, tones[1], "playback_only"),
              FakeTrack(3, tones[2], "html")]  # fmt: skip
    site = serve(FakeFMA(tracks, page_size=10, signature=SIGNATURE))
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": ENV_SECRET}
    corpus = tmp_path / "corpus"
    printed = _run("scrape", "--base-url", site.base_url, "--genre", "Test", "--dest",
                   str(corpus), "--pause", "0.1", "--min-delay", "0.01", "--no-progress",
                   env=env)  # fmt: skip
    assert site.count("/files/") >= 3  # the signed URLs were really used
    out = tmp_path / "out"
    printed += _run("preprocess", str(corpus), str(out), "--master", "local[1]",
                    "--max-error-rate", "1", "--spark-conf",
                    f"spark.hadoop.fs.s3a.secret.key={SPARK_SECRET}", "--spark-conf",
                    f"spark.fmaprep.api.token={SPARK_SECRET}", env=env)  # fmt: skip
    printed += _run("inspect", str(out), env=env)
    printed += _run("report", str(out), "--out", str(tmp_path / "report.html"), env=env)
    assert (out / "_SUCCESS").exists() and (tmp_path / "report.html").exists()
    assert "X-Amz-Signature" not in (corpus / "_tracks.jsonl").read_text()
    assert _leaks(tmp_path, printed) == [], [
        line for line in printed.splitlines() if any(s in line for s in PLANTED)
    ][:5]


def test_secret_looking_conf_keys_are_masked() -> None:
    conf = {
        "spark.hadoop.fs.s3a.secret.key": "s",
        "spark.hadoop.fs.s3a.access.key": "a",
        "spark.hadoop.fs.s3a.session.token": "t",
        "spark.hadoop.fs.s3a.bucket.b.secret.key": "s",
        "spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net": "k",
        "spark.myapp.password": "p",
        "spark.executor.memory": "2g",
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
    }
    shown = redact(conf)
    assert {k for k, v in shown.items() if v != "*****"} == {
        "spark.executor.memory",
        "spark.hadoop.fs.s3a.endpoint",
    }


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://b.s3.amazonaws.com/k.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab",
         "https://b.s3.amazonaws.com/k.mp3"),
        ("https://cdn.example/k.mp3?Expires=1&Signature=x&Key-Pair-Id=K", "https://cdn.example/k.mp3"),
        ("https://h/k.mp3?page=2&token=zz", "https://h/k.mp3?page=2"),
        ("https://user:pw@h/k.mp3?sig=1", "https://h/k.mp3"),
        ("https://h/k.mp3?page=2", "https://h/k.mp3?page=2"),
        ("https://h/k.mp3", "https://h/k.mp3"),
        ("https://h/k.mp3?a=%2F&b=1", "https://h/k.mp3?a=%2F&b=1"),  # kept as written
        # userinfo goes whole, with or without a query: a user name alone can be the token
        ("https://user:pw@h/k.mp3", "https://h/k.mp3"),
        ("https://user:pw@h/k.mp3?page=2", "https://h/k.mp3?page=2"),
        ("https://ghp_TOKEN@h/k.mp3#t=1", "https://h/k.mp3#t=1"),
        ("https://user:p@ss@h:8443/k.mp3", "https://h:8443/k.mp3"),
        ("s3a://AKIA:SECRET@bucket/k.mp3", "s3a://bucket/k.mp3"),
        # does not parse (unclosed IPv6 bracket): no userinfo, no query, no fragment
        ("https://user:pw@[::1/k.mp3?page=2", "https://[::1/k.mp3"),
    ],
)  # fmt: skip
def test_signed_query_parameters_are_stripped(url: str, want: str) -> None:
    assert strip_signed_query(url) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("download of https://h/x.mp3?X-Amz-Signature=abc failed: 403 (attempt 2 of 3)",
         "download of https://h/x.mp3 failed: 403 (attempt 2 of 3)"),
        ("GET https://user:pw@h/x failed", "GET https://h/x failed"),
        ("GET https://user:pw@h/x?page=2, failed", "GET https://h/x?page=2, failed"),
        ("reading s3a://AKIA:SECRET@b/k.mp3: 403", "reading s3a://b/k.mp3: 403"),
        ("bad host 'https://u:pw@[::1/x?token=t'", "bad host 'https://[::1/x'"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
        ("ConnectionError: HTTPSConnectionPool(host='h', port=443): Max retries exceeded with "
         "url: /k.mp3?X-Amz-Signature=abc&page=2 (Caused by NewConnectionError(...))",
         "ConnectionError: HTTPSConnectionPool(host='h', port=443): Max retries exceeded with "
         "url: /k.mp3?page=2 (Caused by NewConnectionError(...))"),
        ("is /tmp/a.mp3 ok? yes, 2/3?", "is /tmp/a.mp3 ok? yes, 2/3?"),
    ],
)  # fmt: skip
def test_urls_inside_messages_are_stripped(text: str, want: str) -> None:
    assert redact_text(text) == want


def test_stats_config_keeps_no_userinfo_in_any_url() -> None:
    """``_stats.json`` stores the config through ``redact_config``: an endpoint or a Spark
    setting holding ``KEY:SECRET@`` keeps its host, not the credentials."""
    from fmaprep.config import Config, JobConfig
    from fmaprep.storage.s3_settings import redact_config

    job = JobConfig(
        s3_endpoint=f"http://AKIA:{SPARK_SECRET}@minio:9000",
        spark_conf={"spark.fmaprep.proxy": f"http://u:{SPARK_SECRET}@proxy:3128/"},
    )
    stored = redact_config(Config(job=job).to_dict())
    assert stored["job"]["s3_endpoint"] == "http://minio:9000"
    assert stored["job"]["spark_conf"] == {"spark.fmaprep.proxy": "http://proxy:3128/"}
    assert SPARK_SECRET not in repr(stored)
    assert stored["job"]["extensions"] == Config().job.extensions  # the rest as it was
