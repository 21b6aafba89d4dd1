"""Loading the pickle batches of a ``part-*`` file as data, never as code.

A pickle names the callables that rebuild its objects (``GLOBAL`` / ``STACK_GLOBAL`` opcodes) and
the unpickler calls them: a tampered part file in a shared bucket could name ``os.system``. The
records fmaprep writes (and PySpark's ``saveAsPickleFile`` of them) need only the callables below:
numpy's array, dtype and scalar constructors, plus ``set`` and ``_codecs.encode`` for protocol-2
pickles. Every other global is refused before anything is called, by name, in one error.

Reading a pickle written by code you trust that holds other types: ``trusted=True`` (or
``FMAPREP_TRUSTED_PICKLES=1`` for the CLI). Data crossing a trust boundary is better kept as
``--format parquet``, which holds no code at all.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

TRUST_ENV = "FMAPREP_TRUSTED_PICKLES"

# (module, name) pairs; numpy 2 moved numpy.core to numpy._core and pickles under the new name
_NUMPY_CORE = ("numpy.core", "numpy._core")
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("numpy", "ndarray"), ("numpy", "dtype")}
    | {(f"{core}.multiarray", name) for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")}
    | {(f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE}
    | {
        (module, n)
        for module in ("builtins", "__builtin__")
        for n in ("set", "frozenset", "bytearray", "complex")
    }
    | {("_codecs", "encode")}
)


class UnsafePickleError(ValueError):
    """A part file's pickle names a callable outside :data:`ALLOWED_GLOBALS`; nothing was run."""


def trusted_from_env() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes"}


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, label: str) -> None:
        super().__init__(io.BytesIO(data))
        self._label = label

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._label}: refused to load the pickle global {module}.{name}: fmaprep reads "
                f"records of builtins and numpy arrays only (if you wrote this file and trust "
                f"it, set {TRUST_ENV}=1)"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._label}: refused a persistent id in the pickle")


def loads(data: bytes, label: str, *, trusted: bool = False) -> Any:
    """Unpickle one batch; globals outside the allowlist raise :class:`UnsafePickleError`
    unless ``trusted``."""
    if trusted:
        return pickle.loads(data)
    return _DataUnpickler(data, label).load()
