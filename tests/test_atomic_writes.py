"""Atomic writes: a save that fails part-way leaves the previous file whole and no temporary file behind.

Every fault here strikes after the new bytes have started to flow (or at the final flush), so a
writer that writes straight over its destination fails these tests: by then it has cut the old
file short or written over part of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SAVERS, savez_writes_half_then_fails

from mnist_xp import npzio
from mnist_xp.errors import MnistXpError

OLD = b"the previous file, which must survive whole\n" * 100


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def writes_half_then_fails(error: BaseException):
    """A ``write(stream)`` callback that writes 5,000 bytes, flushes them, then raises ``error``."""

    def write(stream):
        stream.write(b"new bytes " * 500)
        stream.flush()
        raise error

    return write


@pytest.mark.parametrize(
    "error, raised, message",
    [(OSError(28, "No space left on device"), MnistXpError, "cannot write \\(No space left on device\\)"),
     (RuntimeError("a bug in the writer"), RuntimeError, "a bug in the writer")],
    ids=["disk-full", "bug"],
)  # fmt: skip
def test_write_atomically_keeps_the_old_file_when_the_write_fails_half_way(tmp_path, error, raised, message):
    path = tmp_path / "file.bin"
    path.write_bytes(OLD)
    with pytest.raises(raised, match=message):
        npzio.write_atomically(path, writes_half_then_fails(error))
    assert path.read_bytes() == OLD
    assert files_in(tmp_path) == ["file.bin"]


@pytest.fixture
def old_file(tmp_path, request):
    """(path, bytes) of version 1 of the file named by the test's ``name``, alone in its folder."""
    path = tmp_path / request.getfixturevalue("name")
    SAVERS[path.name](path, 1)
    return path, path.read_bytes()


def json_dump_writes_half_then_fails(monkeypatch):
    """Make JSON encoding fail: ``json.dump`` after writing half its text to the file, ``json.dumps`` at once."""
    real = json.dumps

    def dump(obj, stream, **kwargs):
        text = real(obj, **kwargs)
        stream.write(text[: len(text) // 2])
        stream.flush()
        raise OSError(28, "No space left on device")

    def dumps(obj, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", dump)
    monkeypatch.setattr(json, "dumps", dumps)


def fsync_fails(monkeypatch):
    """Make the flush to disk fail, after every byte has been written."""

    def fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)


FAULTS = [
    ("model.npz", savez_writes_half_then_fails),
    ("run.npz", savez_writes_half_then_fails),
    ("report.json", json_dump_writes_half_then_fails),
    *((name, fsync_fails) for name in SAVERS),
]


@pytest.mark.parametrize("name, fault", FAULTS, ids=[f"{name}-{fault.__name__}" for name, fault in FAULTS])
def test_a_save_that_fails_part_way_keeps_the_old_file(tmp_path, monkeypatch, old_file, name, fault):
    path, old = old_file
    fault(monkeypatch)
    with pytest.raises((MnistXpError, OSError)) as raised:
        SAVERS[name](path, 2)
    monkeypatch.undo()
    if isinstance(raised.value, MnistXpError):
        assert str(raised.value).startswith(f"{path}: cannot write (")
    assert path.read_bytes() == old
    assert files_in(tmp_path) == [name]


DISK_ROOM = 4096
"""A file may grow to this many bytes in the disk-full run; every file kind's version 2 is larger."""

FILL_THE_DISK = f"""
import json, resource, signal, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from helpers import SAVERS
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
outcome = {{}}
for name, save in SAVERS.items():
    resource.setrlimit(resource.RLIMIT_FSIZE, ({DISK_ROOM}, hard))
    try:
        save(Path(sys.argv[1]) / name / name, 2)
        outcome[name] = None
    except Exception as exc:
        outcome[name] = f"{{type(exc).__name__}}: {{exc}}"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def disk_full_run(tmp_path_factory):
    """Version 1 of every file kind, then a process that saves version 2 of each with room for only DISK_ROOM bytes.

    Returns the folder (one subfolder per file kind), the old bytes and the errors the saves raised.
    """
    resource = pytest.importorskip("resource", reason="file size limits need a POSIX system")
    if not hasattr(signal, "SIGXFSZ"):
        pytest.skip("this system has no SIGXFSZ")
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    if hard != resource.RLIM_INFINITY and hard < DISK_ROOM:
        pytest.skip(f"the hard file size limit is {hard} bytes")
    folder = tmp_path_factory.mktemp("disk-full")
    old = {}
    for name, save in SAVERS.items():
        (folder / name).mkdir()
        save(folder / name / name, 1)
        old[name] = (folder / name / name).read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", FILL_THE_DISK, str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return folder, old, json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(SAVERS))
def test_a_disk_that_fills_up_half_way_leaves_the_old_file_whole(disk_full_run, name):
    folder, old, errors = disk_full_run
    path = folder / name / name
    assert errors[name] is not None and errors[name].endswith(f"{path}: cannot write (File too large)")
    assert path.read_bytes() == old[name]
    assert files_in(folder / name) == [name]
