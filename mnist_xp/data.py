"""MNIST files to arrays: IDX parsing, checksum verification and preprocessing.

The four MNIST files ship with the package (``mnist_xp/datasets/mnist``) and are verified
against their SHA-256 sums on every load. Any folder holding IDX files with MNIST's four
names (gzipped or not) can be loaded instead, Fashion-MNIST for one.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import namespace, to_device
from .config import SettingError
from .errors import DataError, LimitError
from .values import is_whole_number

BUNDLED_DIR = Path(__file__).parent / "datasets" / "mnist"
CHECKSUM_FILE = "SHA256SUMS"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
INPUT_SIZE = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
# Deflate cannot expand its input by more than about 1032 times, so a gzip file of n bytes
# holds at most this many times n bytes of data, whatever its IDX header claims.
_MAX_DEFLATE_RATIO = 1032


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX file of unsigned bytes (the only type MNIST uses) into a uint8 array.

    The header is checked against the file's length before anything is allocated, so a
    header that claims more data than the file holds is refused.
    """
    if len(raw) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero, zero2, dtype_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero != 0 or zero2 != 0 or ndim == 0:
        raise DataError(f"{name}: not an IDX file (magic number 0x{raw[:4].hex()})")
    if dtype_code != _IDX_UBYTE:
        raise DataError(f"{name}: IDX element type 0x{dtype_code:02x} is not supported (only unsigned bytes, 0x08)")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes, needs {header_end})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_end + int(np.prod(shape, dtype=object))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{name}: {problem}: header says {shape} ({expected} bytes), file has {len(raw)} bytes")
    try:
        return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)
    except ValueError:  # an empty array whose other dimensions NumPy cannot represent
        raise DataError(f"{name}: header says {shape}, which is not a shape NumPy can hold") from None


def read_idx(path: Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or not, checking its magic number when one is expected."""
    raw = _read_bytes(path)
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip_idx(raw, path)
    if expected_magic is not None and raw[:4] != expected_magic.to_bytes(4, "big"):
        raise DataError(f"{path}: wrong magic number 0x{raw[:4].hex()} (expected 0x{expected_magic:08x})")
    return parse_idx(raw, str(path))


def _gunzip_idx(packed: bytes, path: Path) -> bytearray:
    """Decompress a gzipped IDX file, never producing more than its header claims (plus one byte).

    The header is inflated first; a claim beyond what the compressed bytes could expand to is
    refused at once, and the body is then inflated only up to the claim, so a gzip bomb costs
    no more memory than an honest file of the size it claims.
    """
    head = _inflate(packed, 4, path)
    if len(head) < 4:
        return head
    header_size = 4 + 4 * head[3]
    head = _inflate(packed, header_size, path)
    if len(head) < header_size or head[:2] != b"\x00\x00":
        return head
    shape = tuple(int.from_bytes(head[i : i + 4], "big") for i in range(4, header_size, 4))
    claimed = header_size + int(np.prod(shape, dtype=object))
    if claimed > _MAX_DEFLATE_RATIO * len(packed):
        raise DataError(
            f"{path}: header says {shape} ({claimed} bytes), more than a {len(packed)}-byte gzip file can hold"
        )
    raw = _inflate(packed, claimed + 1, path)
    if len(raw) > claimed:
        raise DataError(f"{path}: has trailing bytes: header says {shape} ({claimed} bytes), the data goes on")
    return raw


def _inflate(packed: bytes, max_bytes: int, path: Path) -> bytearray:
    """The first ``max_bytes`` bytes of gzip data (fewer if it holds fewer); members may be concatenated."""
    out = bytearray()
    rest = packed
    try:
        while rest and len(out) < max_bytes:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += stream.decompress(rest, max_bytes - len(out))
            if len(out) >= max_bytes:
                break
            if not stream.eof:
                raise DataError(f"{path}: corrupted gzip data (the compressed stream ends early)")
            rest = stream.unused_data
    except zlib.error as exc:
        raise DataError(f"{path}: corrupted gzip data ({exc})") from None
    return out


def _read_bytes(path: Path) -> bytes:
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_checksums(folder: Path) -> dict[str, str]:
    """Read a ``sha256sum``-style SHA256SUMS file into {file name: hex digest}; {} if absent."""
    path = folder / CHECKSUM_FILE
    if not path.exists():
        return {}
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}: line {number} is not '<sha256>  <file name>'")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def verify_checksum(path: Path, sums: dict[str, str]) -> None:
    """Check ``path`` against its listed SHA-256, if it is listed."""
    expected = sums.get(path.name)
    if expected is None:
        return
    actual = hashlib.sha256(_read_bytes(path)).hexdigest()
    if actual != expected:
        raise DataError(f"{path}: SHA-256 mismatch (expected {expected[:12]}..., got {actual[:12]}...): the file is corrupted")


def find_file(folder: Path, stem: str) -> Path:
    """Locate ``stem`` or ``stem.gz`` in ``folder``."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder / stem}[.gz]: file not found")


@dataclass(frozen=True)
class RawSplit:
    """One split as stored: uint8 images (n, 28, 28) and uint8 labels (n,)."""

    images: np.ndarray
    labels: np.ndarray


def load_raw(data_dir: Path | str | None = None) -> tuple[RawSplit, RawSplit]:
    """Load the (train, test) splits as uint8 arrays, verifying checksums where they are listed.

    With no ``data_dir`` the bundled MNIST is used, and every one of its files must be listed
    in its SHA256SUMS.
    """
    bundled = data_dir is None
    folder = BUNDLED_DIR if bundled else Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found")
    sums = read_checksums(folder)
    arrays = {}
    for key, stem in FILES.items():
        path = find_file(folder, stem)
        if bundled and path.name not in sums:
            raise DataError(f"{path}: not listed in {folder / CHECKSUM_FILE}")
        verify_checksum(path, sums)
        arrays[key] = read_idx(path, IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC)
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_pair(folder, split, images, labels)
        splits.append(RawSplit(images, labels))
    return splits[0], splits[1]


def _check_pair(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    prefix = "train" if split == "train" else "t10k"
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{folder / prefix}-images-idx3-ubyte: images are {images.shape[1:]}, expected {IMAGE_SHAPE}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{folder / prefix}-labels-idx1-ubyte: {labels.shape[0] if labels.ndim else 0} labels "
            f"for {len(images)} images"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{folder / prefix}-labels-idx1-ubyte: label {labels.max()} is outside 0..{NUM_CLASSES - 1}")


def preprocess_images(images: np.ndarray) -> np.ndarray:
    """Scale uint8 pixels to [0, 1] and flatten each 28x28 image to 784 values (float64 on the host)."""
    return images.reshape(len(images), -1) / 255.0


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Labels (n,) to one-hot rows (n, num_classes)."""
    encoded = np.zeros((len(labels), num_classes))
    encoded[np.arange(len(labels)), labels] = 1.0
    return encoded


@dataclass(frozen=True)
class DataSource:
    """Where a run's data comes from: a ``folder`` of IDX files (None: the bundled MNIST), the first ``limit``
    training images (None: all), and the ``device`` ('cpu' or 'gpu') its arrays go to.

    ``load`` reads, verifies and scales it; ``fingerprint`` names the data itself, so that a checkpoint or a
    study made on it can refuse to go on with other data.
    """

    folder: str | None = None
    limit: int | None = None
    device: str = "cpu"

    def __post_init__(self):
        if self.folder is not None:
            object.__setattr__(self, "folder", str(Path(self.folder).absolute()))
        if self.limit is not None and not (is_whole_number(self.limit) and self.limit >= 1):
            raise SettingError("limit", f"{self.limit!r} is not a whole number >= 1")

    def raw(self) -> tuple[RawSplit, RawSplit]:
        """The (train, test) splits as stored, verified, the training one cut to ``limit``."""
        train, test = load_raw(self.folder)
        if self.limit is not None:
            if self.limit > len(train.images):
                raise LimitError("limit", f"{self.limit} is outside 1..{len(train.images)} (the training set's size)")
            train = RawSplit(train.images[: self.limit], train.labels[: self.limit])
        return train, test

    def load(self, dtype: str = "float32", xp=None) -> Dataset:
        """The data set on ``device`` in ``dtype``: verified, scaled to [0, 1], training images cut to ``limit``.

        ``xp`` puts the arrays in that namespace instead of the device's (array-api-strict, in tests).
        """
        train, test = self.raw()
        xp = namespace(self.device) if xp is None else xp
        return Dataset(
            X_train=to_device(preprocess_images(train.images), xp, dtype),
            Y_train=to_device(one_hot(train.labels), xp, dtype),
            y_train=train.labels.astype(np.int64),
            X_test=to_device(preprocess_images(test.images), xp, dtype),
            Y_test=to_device(one_hot(test.labels), xp, dtype),
            y_test=test.labels.astype(np.int64),
            source=self,
            fingerprint=digest(train, test),
        )

    def fingerprint(self) -> str:
        """The SHA-256 of the data as used (``digest``), without putting it on the device."""
        return digest(*self.raw())

    def record(self, fingerprint: str | None) -> dict:
        """What a checkpoint or a study keeps of the data: its folder, limit and fingerprint (JSON)."""
        return {"folder": self.folder, "limit": self.limit, "sha256": fingerprint}


def digest(train: RawSplit, test: RawSplit) -> str:
    """The SHA-256 of a data set's images and labels as used (after the limit): equal digests, equal data."""
    sha = hashlib.sha256()
    for array in (train.images, train.labels, test.images, test.labels):
        sha.update(str(array.shape).encode())
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """Training and test arrays on one device: X (n, 784) in [0, 1], Y one-hot (n, 10), y host labels.

    ``source`` and ``fingerprint`` say which data the arrays hold (None for arrays made elsewhere), so that
    a checkpoint or a study can name the data its run needs and refuse other data.
    """

    X_train: object
    Y_train: object
    y_train: np.ndarray
    X_test: object
    Y_test: object
    y_test: np.ndarray
    source: DataSource | None = None
    fingerprint: str | None = None


def load(xp, dtype: str = "float32", data_dir: Path | str | None = None, limit: int | None = None) -> Dataset:
    """Load, verify and preprocess a data set into namespace ``xp`` in ``dtype`` (see ``DataSource``)."""
    return DataSource(None if data_dir is None else str(data_dir), limit).load(dtype, xp)


def load_mnist(
    device: str = "cpu", dtype: str = "float32", data_dir: Path | str | None = None, limit: int | None = None
) -> Dataset:
    """MNIST (or another IDX data set in ``data_dir``) on ``device`` ('cpu' or 'gpu'), verified and scaled to [0, 1].

    ``limit`` keeps the first ``limit`` training images; the test set is always whole.
    """
    return DataSource(None if data_dir is None else str(data_dir), limit, device).load(dtype)
