"""fmaprep: turn a music collection into mu-law WaveNet training data with PySpark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Iterator


def read_records(output: str, **filters: Any) -> Iterator[dict[str, Any]]:
    """Yield the records of an OUTPUT without Spark or a JVM (fmaprep.formats.records)."""
    from fmaprep.formats.records import read_records as _read_records

    return _read_records(output, **filters)


__all__ = ["__version__", "read_records"]
