"""What looks like a secret, and how it is hidden before anything is logged or stored.

Config keys (a ``--spark-conf spark.hadoop.fs.s3a.secret.key=...``) are matched by name; URLs
lose their userinfo (``user:password@``) and the query parameters that sign or authorize them
(S3/CloudFront presigned URLs, ``token=``), so ``_tracks.jsonl``, manifests, ``_stats.json`` and
logs keep where a file came from but never a usable link.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
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
# a URL of any scheme (an s3a://KEY:SECRET@bucket or a webhdfs:// URL can carry userinfo as well
# as https), or a bare path with a query: urllib3's errors name only that ("Max retries exceeded
# with url: /k.mp3?X-Amz-Signature=..."), and requests puts them in str(exc)
_URL_IN_TEXT = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+|(?<![\w/.:])/[^\s'\"<>?]*\?[^\s'\"<>]+"
)


def is_secret_key(key: str) -> bool:
    return SECRET_KEY_PATTERN.search(key) is not None


def redact(conf: Mapping[str, str]) -> dict[str, str]:
    """A copy safe to print, log or store: secret-looking values replaced by ``*****``."""
    return {k: (MASK if is_secret_key(k) else v) for k, v in conf.items()}


def strip_signed_query(url: str) -> str:
    """``url`` without its userinfo and without the query parameters that sign or authorize it;
    everything else is kept as written (``url`` itself when there was nothing to strip).

    The whole userinfo goes, not only the password: a user name alone is often the credential
    (``https://TOKEN@github.com/...``, ``https://TOKEN:x-oauth-basic@...``).
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[" (IPv6 host) in a log line: strip without parsing
        return _strip_unparsed(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = _unsigned_query(parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _unsigned_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not SIGNED_PARAM_PATTERN.match(k)]
    return query if len(kept) == len(pairs) else urlencode(kept)


def _strip_unparsed(url: str) -> str:
    """What a URL that does not parse may keep: scheme, host and path; not its userinfo, and
    not its query or fragment, which cannot be told apart from a signature."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = head.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def redact_strings(value: Any) -> Any:
    """A copy of a JSON-like tree (a config, stats) with :func:`redact_text` applied to every
    string in it, at any depth; keys and other values are kept."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_strings(v) for v in value)
    return value


def redact_text(text: str) -> str:
    """``text`` with every URL (and every ``/path?query``) in it stripped of userinfo and
    signing parameters."""
    if "://" not in text and "?" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: strip_signed_query(m.group(0)), text)


# what text from outside (a web page, a file name) must not send to a terminal raw: C0 controls
# but tab and newline (ESC starts a terminal escape sequence, CR rewrites the line), DEL, C1
# controls, and the invisible and direction-changing format characters
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control and invisible characters shown as escapes (``\\x1b``, ``\\u202e``):
    what it says reaches a terminal, what it would do there does not."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message of every record goes through :func:`redact_text`
    and :func:`printable`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = printable(redact_text(message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
