"""Files from strangers: IDX data and model files that lie, are cut, mutated or bombs.

Whatever the bytes, loading returns valid arrays or raises the project's own one-line error,
and never allocates much more than the file itself holds (measured with tracemalloc, which
sees NumPy's and zlib's allocations too).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import damaged
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mnist_xp import data, modelfile
from mnist_xp.errors import DataError, ModelFileError

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLACK = 512 * 1024  # interpreter and zlib bookkeeping on top of the file's own size


def load_within_budget(load, path: Path, error: type, factor: int = 3):
    """Run ``load(path)``; return its result or its error, after checking the peak allocation."""
    budget = factor * path.stat().st_size + SLACK
    tracemalloc.start()
    try:
        try:
            outcome = load(path)
        except error as exc:
            outcome = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= budget, f"peak allocation {peak} bytes for a {path.stat().st_size}-byte file"
    if isinstance(outcome, error):
        assert "\n" not in str(outcome) and str(outcome).startswith(str(path))
    return outcome


def idx_header(dims, type_code=0x08) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


DIMS = st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=0, max_size=4)


@FUZZ
@given(raw=st.binary(max_size=80) | st.builds(lambda dims, body: idx_header(dims) + body, DIMS, st.binary(max_size=80)))
@example(raw=idx_header([0, 256, 2**24, 2**31]))  # empty, yet a shape NumPy cannot represent: found by this test
def test_fuzzed_idx_bytes_parse_or_fail_with_a_data_error(raw):
    try:
        array = data.parse_idx(raw, "fuzzed")
    except DataError as exc:
        assert str(exc).startswith("fuzzed: ") and "\n" not in str(exc)
    else:
        assert array.dtype == np.uint8 and 4 + 4 * array.ndim + array.size == len(raw)


@FUZZ
@given(
    dims=DIMS,
    body=st.binary(max_size=200),
    level=st.integers(0, 9),
    damage=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
    cut=st.none() | st.integers(0, 10**6),
)
def test_fuzzed_gzip_idx_files_read_or_fail_with_a_data_error(tmp_path_factory, dims, body, level, damage, cut):
    packed = bytearray(gzip.compress(idx_header(dims) + body, compresslevel=level))
    for position, value in damage:
        packed[position % len(packed)] = value
    path = tmp_path_factory.getbasetemp() / "fuzzed-idx.gz"
    path.write_bytes(bytes(packed[:cut]))
    outcome = load_within_budget(data.read_idx, path, DataError, factor=4)
    if not isinstance(outcome, DataError):
        assert outcome.dtype == np.uint8


def test_concatenated_gzip_members_are_read_as_one_stream(tmp_path):
    raw = idx_header([3, 2]) + bytes([1, 2, 3, 4, 5, 6])
    path = tmp_path / "two-members-idx2-ubyte.gz"
    path.write_bytes(gzip.compress(raw[:9]) + gzip.compress(raw[9:]))
    np.testing.assert_array_equal(data.read_idx(path), [[1, 2], [3, 4], [5, 6]])


def test_gzip_bomb_is_not_inflated_beyond_its_header(tmp_path):
    """1000 bytes claimed, 64 MiB of zeros packed into about 64 KB: refused without inflating them."""
    bomb = tmp_path / "bomb-idx1-ubyte.gz"
    bomb.write_bytes(gzip.compress(idx_header([1000]) + bytes(64 * 2**20), compresslevel=9))
    error = load_within_budget(data.read_idx, bomb, DataError)
    assert "has trailing bytes: header says (1000,) (1008 bytes), the data goes on" in str(error)


def test_header_claim_beyond_what_gzip_could_hold_is_refused_at_once(tmp_path):
    lie = tmp_path / "lie-idx3-ubyte.gz"
    lie.write_bytes(gzip.compress(idx_header([2**31, 28, 28]) + bytes(1000)))
    error = load_within_budget(data.read_idx, lie, DataError)
    assert f"header says ({2**31}, 28, 28) ({16 + 2**31 * 784} bytes), more than a" in str(error)


def test_header_claim_beyond_a_plain_file_is_refused(tmp_path):
    lie = tmp_path / "lie-idx3-ubyte"
    lie.write_bytes(idx_header([2**31, 28, 28]) + bytes(1000))
    error = load_within_budget(data.read_idx, lie, DataError)
    assert "truncated: header says" in str(error)


def test_special_files_are_not_read(tmp_path):
    for stem in data.FILES.values():
        (tmp_path / stem).symlink_to("/dev/zero")
    with pytest.raises(DataError, match="train-images-idx3-ubyte: not a regular file"):
        data.load_raw(tmp_path)
    model = tmp_path / "model.npz"
    model.symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match="model.npz: not a regular file"):
        modelfile.load(model)


def npy_member(header: dict, body: bytes) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue() + body


def write_npz(path: Path, members: dict, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    return path


@pytest.mark.parametrize(
    "members, message",
    [
        ({"W0.npy": npy_member({"descr": "<f8", "fortran_order": False, "shape": (2**37,)}, bytes(64))},
         r"array W0: header says shape \(137438953472,\) of <f8, but 64 bytes are stored"),
        ({"W0.npy": npy_member({"descr": "<f4", "fortran_order": False, "shape": (-4,)}, bytes(16))},
         r"array W0: invalid shape \(-4,\)"),
        ({"meta.npy": npy_member({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\x80\x04K\x01.")},
         r"array meta: element type \|O is not supported"),
        ({"W0.npy": npy_member({"descr": [("a", "<f8")], "fortran_order": False, "shape": (1,)}, bytes(8))},
         "array W0: element type .* is not supported"),
        ({"W0.npy": b"\x93NUMPY\x09\x00" + bytes(20)}, r"array W0: \.npy format version \(9, 0\)"),
        ({"W0.npy": b"not an npy member at all"}, "not a readable mnist-xp model file"),
        ({"notes.txt": b"hello"}, "unexpected member 'notes.txt'"),
    ],
    ids=["huge-shape", "negative-shape", "pickle", "record", "version", "garbage-member", "stray-member"],
)
def test_model_members_that_lie_are_refused_before_allocating(tmp_path, members, message):
    path = write_npz(tmp_path / "model.npz", members)
    error = load_within_budget(modelfile.load, path, ModelFileError)
    assert isinstance(error, ModelFileError)
    assert "not a readable mnist-xp model file" in str(error)
    assert re.search(message, str(error))


def test_compressed_archives_are_refused(tmp_path):
    """A deflated member could expand a thousand times over; mnist-xp writes and reads stored members only."""
    members = {"W0.npy": npy_member({"descr": "<f8", "fortran_order": False, "shape": (2**20,)}, bytes(8 * 2**20))}
    path = write_npz(tmp_path / "model.npz", members, zipfile.ZIP_DEFLATED)
    error = load_within_budget(modelfile.load, path, ModelFileError)
    assert "member 'W0.npy' is compressed; only uncompressed .npz files are read" in str(error)


def test_members_claiming_more_than_the_file_holds_are_refused(tmp_path):
    """Sizes in the central directory are checked before any member is read (overlapping entries, lies)."""
    path = tmp_path / "model.npz"
    modelfile.save(path, [(np.zeros((4, 3), np.float32), np.zeros(3, np.float32))], "relu")
    raw = bytearray(path.read_bytes())
    entry = raw.index(b"PK\x01\x02")  # the first member's central directory record
    raw[entry + 20 : entry + 28] = (2**31).to_bytes(4, "little") * 2  # compressed and uncompressed size
    path.write_bytes(bytes(raw))
    error = load_within_budget(modelfile.load, path, ModelFileError)
    assert "its members claim" in str(error) and f"in a {len(raw)}-byte file" in str(error)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> bytes:
    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)),
              (rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32))]
    path = tmp_path_factory.mktemp("model") / "model.npz"
    modelfile.save(path, params, "tanh", extra={"test_accuracy": 0.5})
    return path.read_bytes()


@FUZZ
@given(
    damage=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.none() | st.integers(0, 10**6),
)
def test_fuzzed_model_files_load_or_fail_with_a_model_file_error(tmp_path_factory, small_model, damage, cut):
    path = tmp_path_factory.getbasetemp() / "fuzzed-model.npz"
    path.write_bytes(damaged(small_model, damage, cut))
    outcome = load_within_budget(modelfile.load, path, ModelFileError)
    if not isinstance(outcome, ModelFileError):
        params, meta = outcome
        assert [W.shape[0] for W, _ in params] == meta["layer_sizes"][:-1]


DESCRS = st.sampled_from(["<f4", "<f8", ">f4", "|u1", "<i8", "|b1", "<U4", "|O", "|V8", "<c16", "|S3", "<M8[s]"])


@FUZZ
@given(
    members=st.dictionaries(
        st.sampled_from(["meta", "W0", "b0", "W1", "b1", "x"]),
        st.tuples(DESCRS, st.lists(st.integers(-2, 2**40), max_size=3), st.booleans(), st.binary(max_size=64)),
        max_size=4,
    )
)
def test_fuzzed_npz_members_read_or_fail_with_a_model_file_error(tmp_path_factory, members):
    path = tmp_path_factory.getbasetemp() / "fuzzed-members.npz"
    write_npz(path, {
        f"{name}.npy": npy_member({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}, body)
        for name, (descr, shape, fortran, body) in members.items()
    })
    outcome = load_within_budget(lambda p: modelfile.read_npz(p, ModelFileError), path, ModelFileError)
    if not isinstance(outcome, ModelFileError):
        assert all(array.dtype.kind in "biufU" and array.flags.writeable for array in outcome.values())


def test_a_member_read_as_a_file_descriptor_is_not_leaked(tmp_path):
    """Every refusal closes the archive (no file descriptors pile up over many loads)."""
    path = write_npz(tmp_path / "model.npz", {"W0.npy": b"garbage"})
    before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else None
    for _ in range(50):
        with pytest.raises(ModelFileError):
            modelfile.load(path)
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before + 1
