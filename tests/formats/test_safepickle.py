"""Part files are loaded as data: a pickle that would run code is refused by every reader, and
nothing it names is called (a marker file its payload would create never appears)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.formats.records import UnsafePickleError, read_partition, read_records
from fmaprep.formats.safepickle import loads
from fmaprep.formats.sequencefile import PickleFileWriter


class _SystemCall:
    """Unpickles by calling os.system: what a tampered part file in a shared bucket holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _EvalInNumpysName:
    """Its class claims numpy's module, but a pickle names what ``__reduce__`` returns, never
    the class: the file holds ``builtins.eval`` (the claimed module earns nothing)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


_EvalInNumpysName.__module__ = "numpy"


class _SystemCallInNumpysName(_SystemCall):
    """The same claim with os.system: the pickle names ``posix.system``."""


_SystemCallInNumpysName.__module__ = "numpy"


def _global_call(module: str, name: str, code: str, opcode: str) -> bytes:
    """A hand-built pickle calling ``module.name(code, {})``, the global named by ``GLOBAL``
    (protocol 2, as PySpark writes) or ``STACK_GLOBAL`` (protocol 4+)."""
    if opcode == "GLOBAL":
        head = pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode()
    else:
        head = pickle.PROTO + b"\x04" + _short_str(module) + _short_str(name) + pickle.STACK_GLOBAL
    arg = code.encode()
    call = pickle.BINUNICODE + len(arg).to_bytes(4, "little") + arg + pickle.EMPTY_DICT
    return head + call + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP


def _short_str(text: str) -> bytes:
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text.encode()


def _record(track_id: str, codes: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"track_id": track_id, "source": f"{track_id}.mp3", "sample_rate": 8000, "mu": 255,
            "codes": codes, "source_sample_rate": 44100, "gain": 0.5, **extra}  # fmt: skip


def _write_output(out: Path, records: list[dict[str, Any]]) -> Path:
    """An OUTPUT of one pickle part file, committed as Spark commits (an empty _SUCCESS: readers
    then read every part-*)."""
    out.mkdir(parents=True)
    (out / "_SUCCESS").write_bytes(b"")
    (out / "_manifest.jsonl").write_text("")  # what inspect and report read besides the parts
    (out / "_stats.json").write_text("{}")
    with (out / "part-00000").open("wb") as f:
        writer = PickleFileWriter(f)
        for record in records:
            writer.append(record)
        writer.close()
    return out


@pytest.fixture(params=["system", "eval_in_numpys_name"])
def tampered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    payload = _SystemCall(marker) if request.param == "system" else _EvalInNumpysName(marker)
    good = _record("000001", np.arange(16, dtype=np.uint8))
    bad = _record("000002", np.arange(16, dtype=np.uint8), genre=payload)
    return _write_output(tmp_path / "out", [good, bad]), marker


def test_the_payload_really_runs_when_trusted(tampered: tuple[Path, Path]) -> None:
    """The test's own check: without the allowlist the marker appears."""
    out, marker = tampered
    list(read_records(str(out), trusted=True))
    assert marker.exists()


def test_read_records_refuses_before_running_anything(tampered: tuple[Path, Path]) -> None:
    out, marker = tampered
    with pytest.raises(UnsafePickleError, match=r"part-00000: refused .*pickle global"):
        list(read_records(str(out)))
    with pytest.raises(UnsafePickleError):
        list(read_partition(out / "part-00000"))
    assert not marker.exists()


def test_the_error_names_the_forbidden_global(tmp_path: Path) -> None:
    blob = pickle.dumps([_SystemCall(tmp_path / "m")])
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system"):
        loads(blob, "part-x")
    blob = pickle.dumps([_EvalInNumpysName(tmp_path / "m")])
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        loads(blob, "part-x")
    assert not (tmp_path / "m").exists()


_TOUCH = "import pathlib; pathlib.Path({marker!r}).touch()"


@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("numpy", "load"),  # loads a file: with allow_pickle, another pickle
        ("numpy", "frompyfunc"),  # wraps any callable as a ufunc
        ("numpy.testing._private.utils", "runstring"),  # exec(code, dict)
        ("numpy.lib.npyio", "load"),
        ("numpy.lib._npyio_impl", "load"),  # where numpy 2 keeps it
        ("numpy", "_SystemCallInNumpysName"),  # a class that only says it is numpy's
        ("numpy.core.multiarray", "system"),  # an allowed module, another name
    ],
)
def test_numpy_globals_outside_the_allowlist_are_refused_by_name(
    tmp_path: Path, module: str, name: str, opcode: str
) -> None:
    """The allowlist is of (module, name) pairs, not of modules: numpy's own globals that load
    files or run code are refused like os.system, before the global is even looked up."""
    marker = tmp_path / "payload-ran"
    blob = _global_call(module, name, _TOUCH.format(marker=str(marker)), opcode)
    with pytest.raises(UnsafePickleError, match=rf"global {re.escape(module)}\.{name}: "):
        loads(blob, "part-x")
    assert not marker.exists()


def test_the_hand_built_payload_really_runs_when_trusted(tmp_path: Path) -> None:
    """The test's own check: runstring's pickle, unguarded, executes its code."""
    marker = tmp_path / "payload-ran"
    code = _TOUCH.format(marker=str(marker))
    loads(_global_call("numpy.testing._private.utils", "runstring", code, "GLOBAL"), "x",
          trusted=True)  # fmt: skip
    assert marker.exists()


def test_a_class_in_numpys_name_that_reduces_to_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    blob = pickle.dumps([_SystemCallInNumpysName(marker)], 2)
    with pytest.raises(UnsafePickleError, match=r"global (posix|os|nt)\.system: "):
        loads(blob, "part-x")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_records_of_numpy_and_builtins_load_at_every_protocol(protocol: int) -> None:
    record = _record(
        "000003",
        np.array([0, 127, 255], dtype=np.uint8),
        gain32=np.float32(0.25),
        count=np.int64(7),
        tags={"a", "b"},
        frozen=frozenset({1}),
        raw=b"\x00\xff",
        window=np.zeros((2, 3), dtype="<f4"),
        fortran=np.asfortranarray(np.ones((2, 2))),
        nothing=None,
    )
    (got,) = loads(pickle.dumps([record], protocol), "part-x")
    assert got.keys() == record.keys()
    for key, value in record.items():
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype and np.array_equal(got[key], value)
        else:
            assert got[key] == value and type(got[key]) is type(value)


def test_an_object_array_cannot_smuggle_a_call(tmp_path: Path) -> None:
    """Object arrays pickle their elements: those pass the same allowlist."""
    array = np.empty(1, dtype=object)
    array[0] = _SystemCall(tmp_path / "m")
    with pytest.raises(UnsafePickleError):
        loads(pickle.dumps([array], 5), "part-x")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["inspect"],
        ["export", "{dest}"],
        ["preview", "--track", "000002", "--out", "{dest}.wav"],
        ["report", "--out", "{dest}.html"],
    ],
)
def test_every_cli_reader_refuses_it_in_one_line(
    tampered: tuple[Path, Path], tmp_path: Path, command: list[str]
) -> None:
    out, marker = tampered
    dest = tmp_path / "dest"
    args = [a.format(dest=dest) for a in command]
    if args[0] == "inspect":
        args.append(str(out))
    else:
        args.insert(len(args) - (1 if args[0] == "export" else 0), str(out))
    env = {k: v for k, v in os.environ.items() if k != "FMAPREP_TRUSTED_PICKLES"}
    proc = subprocess.run([sys.executable, "-m", "fmaprep", *args], capture_output=True,
                          text=True, env=env, check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "refused to load the pickle global" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_the_training_sampler_refuses_it(tampered: tuple[Path, Path]) -> None:
    from fmaprep.train.data import WindowSampler

    out, marker = tampered
    with pytest.raises(UnsafePickleError):
        for _ in WindowSampler(str(out), window=8, mode="sequential"):
            pass
    assert not marker.exists()
