"""IDX parsing, checksum verification and preprocessing, on good and broken files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_xp import data
from mnist_xp.backend import namespace
from mnist_xp.errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_dataset(folder: Path, n_train=6, n_test=4, compress=True) -> dict:
    """A tiny data set with MNIST's file names; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, size=n_train),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, size=n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in data.FILES.items():
        raw = idx_bytes(arrays[key])
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def test_parse_idx_reads_shape_and_values():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(array)), array)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "element type 0x0d"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (idx_bytes(np.zeros((3, 2), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((3, 2), np.uint8)) + b"\x00", "trailing bytes"),
        (b"\x00\x00\x08\x01" + (2**31).to_bytes(4, "big") + b"\x00" * 1000, "truncated"),
    ],
    ids=["short", "bad-magic", "bad-type", "short-header", "truncated", "trailing", "huge-claim"],
)
def test_parse_idx_refuses_broken_input(raw, message):
    with pytest.raises(DataError, match=message):
        data.parse_idx(raw, "broken.idx")


def test_read_idx_reads_gzipped_and_plain_and_checks_magic(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "plain").write_bytes(idx_bytes(labels))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    for name in ("plain", "packed.gz"):
        np.testing.assert_array_equal(data.read_idx(tmp_path / name, data.LABELS_MAGIC), labels)
    with pytest.raises(DataError, match=r"plain: wrong magic number 0x00000801 \(expected 0x00000803\)"):
        data.read_idx(tmp_path / "plain", data.IMAGES_MAGIC)


def test_read_idx_names_a_corrupted_gzip_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="cut.gz: corrupted gzip data"):
        data.read_idx(tmp_path / "cut.gz")


def test_load_raw_reads_a_folder_of_idx_files(tmp_path):
    for compress in (True, False):
        folder = tmp_path / str(compress)
        arrays = write_dataset(folder, compress=compress)
        train, test = data.load_raw(folder)
        np.testing.assert_array_equal(train.images, arrays["train_images"])
        np.testing.assert_array_equal(test.labels, arrays["test_labels"])


def test_load_raw_verifies_listed_checksums(tmp_path):
    write_dataset(tmp_path)
    name = "train-labels-idx1-ubyte.gz"
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {name}\n")
    with pytest.raises(DataError, match=f"{name}: SHA-256 mismatch"):
        data.load_raw(tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink(), r"t10k-labels-idx1-ubyte\[.gz\]: file not found"),
        (
            lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8)))),
            "train-labels-idx1-ubyte: 5 labels for 6 images",
        ),
        (
            lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((4, 27, 28), np.uint8)))),
            r"t10k-images-idx3-ubyte: images are \(27, 28\)",
        ),
        (
            lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(4, 12, np.uint8)))),
            "label 12 is outside 0..9",
        ),
        (
            lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(6, np.uint8)))),
            "train-images-idx3-ubyte.gz: wrong magic number",
        ),
    ],
    ids=["missing", "count-mismatch", "wrong-shape", "bad-label", "labels-as-images"],
)
def test_load_raw_names_the_broken_file(tmp_path, damage, message):
    write_dataset(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=message):
        data.load_raw(tmp_path)


def test_load_raw_refuses_a_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        data.load_raw(tmp_path / "nowhere")


def test_preprocessing_scales_flattens_and_one_hot_encodes():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8).repeat(2, axis=0)
    X = data.preprocess_images(images)
    assert X.shape == (2, 4)
    np.testing.assert_allclose(X[0], [0.0, 1.0, 0.2, 0.4])
    Y = data.one_hot(np.array([3, 0, 9]))
    assert Y.shape == (3, 10)
    np.testing.assert_array_equal(Y.argmax(axis=1), [3, 0, 9])
    np.testing.assert_array_equal(Y.sum(axis=1), 1.0)


@pytest.fixture(scope="module")
def bundled():
    return data.load_raw()


def test_bundled_mnist_is_the_real_data_set(bundled):
    train, test = bundled
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(train.labels[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(test.labels[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert np.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_bundled_checksums_cover_every_file_and_catch_corruption(tmp_path):
    sums = data.read_checksums(data.BUNDLED_DIR)
    assert set(sums) == {f"{stem}.gz" for stem in data.FILES.values()}
    copy = tmp_path / "copy"
    shutil.copytree(data.BUNDLED_DIR, copy)
    target = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[-10] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: SHA-256 mismatch"):
        data.load_raw(copy)


def test_load_puts_preprocessed_arrays_on_the_backend(backend):
    dataset = data.load(backend.xp, "float32", limit=500)
    assert tuple(dataset.X_train.shape) == (500, 784) and tuple(dataset.Y_train.shape) == (500, 10)
    assert tuple(dataset.X_test.shape) == (10000, 784)
    assert dataset.X_train.dtype == backend.xp.float32
    X = backend.to_numpy(dataset.X_train)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(backend.to_numpy(dataset.Y_train).argmax(axis=1), dataset.y_train)


def test_load_refuses_a_limit_beyond_the_data():
    with pytest.raises(DataError, match="limit: 60001 is outside 1..60000"):
        data.load(namespace("cpu"), limit=60001)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_loads_from_its_folder():
    train, test = data.load_raw(FASHION_DIR)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
