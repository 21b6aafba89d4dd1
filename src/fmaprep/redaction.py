"""What looks like a secret, and how it is hidden before anything is logged or stored.

Config keys (a ``--spark-conf spark.hadoop.fs.s3a.secret.key=...``) are matched by name; URLs
lose the query parameters that sign or authorize them (S3/CloudFront presigned URLs, ``token=``),
so ``_tracks.jsonl``, manifests and logs keep where a file came from but never a usable link.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "*****"
SECRET_KEY_PATTERN = re.compile(
    r"(secret|passw|token|session|credential|signature|access\.?key|api\.?key|\.key\b|auth)",
    re.IGNORECASE,
)
# query parameters that sign or authorize a URL (AWS SigV2/V4, CloudFront, GCS, Azure SAS, ...)
SIGNED_PARAM_PATTERN = re.compile(
    r"^(x-amz-.*|x-goog-.*|signature|sig|se|sp|sv|policy|key-pair-id|expires|awsaccesskeyid"
    r"|.*(token|secret|passw|credential|auth|key).*)$",
    re.IGNORECASE,
)
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")


def is_secret_key(key: str) -> bool:
    return SECRET_KEY_PATTERN.search(key) is not None


def redact(conf: Mapping[str, str]) -> dict[str, str]:
    """A copy safe to print, log or store: secret-looking values replaced by ``*****``."""
    return {k: (MASK if is_secret_key(k) else v) for k, v in conf.items()}


def strip_signed_query(url: str) -> str:
    """``url`` without the query parameters that sign or authorize it (others are kept)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not SIGNED_PARAM_PATTERN.match(k)]
    if len(kept) == len(pairs):
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]  # user:password@ too
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with every http(s) URL in it stripped of signing parameters."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: strip_signed_query(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message of every record goes through :func:`redact_text`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
