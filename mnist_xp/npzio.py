""".npz files written atomically and read without pickle: what model files and checkpoints share.

Both kinds of file are an uncompressed .npz whose ``meta`` entry is a JSON description; this
module writes them so that a crash never leaves half a file, and reads them so that a damaged
or hostile file costs no more memory than its size and unpickles nothing.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import MnistXpError, first_line


def write_npz_atomically(path: Path, arrays: dict, error: type[MnistXpError] = MnistXpError) -> None:
    """Write ``arrays`` as an uncompressed .npz at ``path``, atomically (see ``write_atomically``)."""
    write_atomically(path, lambda stream: np.savez(stream, **arrays), error)


def write_atomically(path: Path | str, write: Callable, error: type[MnistXpError] = MnistXpError) -> None:
    """Write a file through ``write(binary_stream)`` into a temporary file beside ``path``, then rename it over ``path``.

    The data and the rename are flushed to disk, so after a crash ``path`` holds either the old
    file or the new one, whole, and no temporary file is left behind. A file system error
    becomes an ``error`` naming ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_folder(folder)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise error(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system lets folders be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def read_npz(path: Path | str, error: type[MnistXpError] = MnistXpError, kind: str = "file") -> dict:
    """Read every array of an uncompressed .npz file; any failure is an ``error`` naming the file.

    Nothing is unpickled, and nothing is allocated beyond what the file holds: the archive's
    members must be stored uncompressed and together no larger than the file, and each
    member's .npy header must describe exactly the bytes stored after it.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"{path}: is a folder, not a {kind}")
        if path.exists() and not path.is_file():
            raise error(f"{path}: not a regular file")
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for member in members:
                if member.compress_type != zipfile.ZIP_STORED or member.compress_size != member.file_size:
                    raise ValueError(f"member {member.filename!r} is compressed; only uncompressed .npz files are read")
            claimed = sum(member.file_size for member in members)
            if claimed > size:
                raise ValueError(f"its members claim {claimed} bytes in a {size}-byte file")
            arrays = {}
            for member in members:
                name = member.filename.removesuffix(".npy")
                if name == member.filename or name in arrays:
                    raise ValueError(f"unexpected member {member.filename!r}")
                with archive.open(member) as stream:
                    arrays[name] = _parse_npy(stream.read(), name)
            return arrays
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError, RuntimeError) as exc:
        raise error(f"{path}: not a readable mnist-xp {kind} ({first_line(exc)})") from None


_NPY_KINDS = "biufU"  # booleans, integers, floats and text: never objects, records or raw bytes


def _parse_npy(raw: bytes, name: str) -> np.ndarray:
    """One .npy member to a (writable) array, after checking its header against its length (ValueError if not)."""
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"array {name}: .npy format version {version} is not supported")
    if dtype.kind not in _NPY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {name}: element type {dtype.str} is not supported")
    if any(n < 0 for n in shape):
        raise ValueError(f"array {name}: invalid shape {shape}")
    stored = len(raw) - stream.tell()
    if stored != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"array {name}: header says shape {shape} of {dtype.str}, but {stored} bytes are stored")
    array = np.frombuffer(bytearray(raw[stream.tell() :]), dtype=dtype)
    return array.reshape(shape, order="F" if fortran_order else "C")


def decode_description(path: Path, raw, error: type[Exception], noun: str, kind: str, fmt: str, version: int) -> dict:
    """The JSON object in an npz file's ``meta`` entry, checked to be ``fmt`` at ``version``.

    ``error`` is raised for anything else, in words naming the ``noun``'s description and the
    ``kind`` of file (model file, checkpoint).
    """
    if raw is None or raw.dtype.kind != "U" or raw.shape != ():
        raise error(f"{path}: no {noun} description (not an mnist-xp {kind})")
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError):
        raise error(f"{path}: {noun} description is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"{path}: not an mnist-xp {kind}")
    if meta.get("version") != version:
        raise error(f"{path}: {noun} format version {meta.get('version')!r} is not supported (this version reads {version})")
    return meta


