"""Ordinary image files to MNIST-style 28x28 digits, prepared the way MNIST's own were.

MNIST's digits are light on a dark field; each was scaled (keeping its aspect ratio) to fit
a 20x20 box and placed in a 28x28 field so that its centre of mass sits at the field's centre.
``to_mnist`` does the same to any grayscale picture of one digit: it inverts dark-on-light
pictures, removes the background (unevenly lit paper too), crops to the digit, scales and
centres it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import IMAGE_SHAPE
from .errors import PLOT_INSTALL_HINT, ImageError, first_line

FIELD = IMAGE_SHAPE[0]
BOX = 20
CENTRE = 14.0
"""Where MNIST's centres of mass lie, in pixel-index coordinates (measured: 13.99 and 14.00)."""
MIN_CONTRAST = 0.1
"""Ink must differ from the background by at least this (on a 0..1 scale), or the image is blank."""
INK_THRESHOLD = 0.1
"""After scaling the ink to 0..1, fainter pixels are background."""
NOISE_LIMIT = 5.0
"""Ink must also stand this many times the noise level (paper grain, sensor and JPEG noise) above the background."""
BACKGROUND_SIDE = 64
BACKGROUND_WINDOW = 15
"""The background is estimated on the picture shrunk to at most 64 pixels a side, from windows
of 15x15 pixels there: wider than a pen stroke, narrower than the lighting changes across a page."""


def require():
    """Return Pillow's Image module, or fail in one line when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:
        raise ImageError(f"reading images needs Pillow, which is not installed; {PLOT_INSTALL_HINT}") from None
    return Image


def read_grayscale(path: Path | str) -> np.ndarray:
    """Read an image file as a 2-D float64 array in [0, 1] (0 black, 1 white).

    Transparent pixels count as white paper; 16-bit images keep their range; photos are turned
    upright as their EXIF orientation says.
    """
    Image = require()
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _to_gray(_upright(image))
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image is too large to read safely") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # Pillow reports damaged files with these
        raise ImageError(f"{path}: cannot read the image ({first_line(exc)})") from None


def _upright(image):
    """The image turned as its EXIF orientation tag says; unchanged when the tag is absent or unreadable."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block costs only the orientation, not the image
        return image


def _to_gray(image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return np.clip(np.asarray(image, dtype=np.float64) / 65535.0, 0.0, 1.0)
    if "A" in image.getbands() or "transparency" in image.info:
        Image = require()
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def to_mnist(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """An MNIST-style 28x28 float64 digit in [0, 1] (light on dark) from a grayscale picture of one digit.

    A light border (its median) means a dark digit on paper, which is inverted. Ink is what
    stands out from the local background (see ``background``). Raises ImageError when no digit
    stands out.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"{name}: expected a non-empty 2-D grayscale image, got shape {gray.shape}")
    if np.median(_border(gray)) >= 0.5:
        gray = 1.0 - gray
    ink = gray - background(gray)
    contrast, noise = float(ink.max()), noise_level(ink)
    if contrast < max(MIN_CONTRAST, NOISE_LIMIT * noise):
        raise ImageError(f"{name}: the image is blank (no digit stands out from the background)")
    ink[ink < max(INK_THRESHOLD * contrast, NOISE_LIMIT * noise)] = 0.0
    ink = np.clip(ink / contrast, 0.0, 1.0)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return centre_in_field(fit_in_box(digit))


def noise_level(ink: np.ndarray) -> float:
    """The standard deviation of the background's noise, estimated robustly on the picture's border."""
    border = _border(ink)
    return 1.4826 * float(np.median(np.abs(border - np.median(border))))


def _border(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0, :], array[-1, :], array[:, 0], array[:, -1]])


def background(gray: np.ndarray) -> np.ndarray:
    """The local background level of a light-on-dark picture, as large as the picture.

    The darkest level within a window wider than a stroke is background wherever a stroke
    passes; averaged over a window of the same size it follows uneven lighting smoothly.
    """
    Image = require()
    height, width = gray.shape
    scale = min(1.0, BACKGROUND_SIDE / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(gray.astype(np.float32)).resize(small_size, Image.Resampling.BOX))
    level = _over_windows(_over_windows(small, np.min), np.mean)
    return np.asarray(Image.fromarray(level.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR))


def _over_windows(array: np.ndarray, reduce, size: int = BACKGROUND_WINDOW) -> np.ndarray:
    """``reduce`` (min or mean) over the size x size window around each pixel, edges repeated; done as
    two one-dimensional passes, which give the same result for these two reductions."""
    padded = np.pad(array, size // 2, mode="edge")
    rows = reduce(np.lib.stride_tricks.sliding_window_view(padded, size, axis=0), axis=-1)
    return reduce(np.lib.stride_tricks.sliding_window_view(rows, size, axis=1), axis=-1)


def fit_in_box(digit: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale ``digit`` so that its longer side is ``box`` pixels, keeping its aspect ratio (antialiased)."""
    Image = require()
    height, width = digit.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(digit.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)


def centre_in_field(digit: np.ndarray, field: int = FIELD, centre: float = CENTRE) -> np.ndarray:
    """Place ``digit`` in a ``field`` x ``field`` array with its centre of mass nearest ``centre``.

    The shift is a whole number of pixels, limited so the digit stays inside the field.
    """
    height, width = digit.shape
    mass = digit.sum()
    com_row = float((digit.sum(axis=1) * np.arange(height)).sum() / mass)
    com_col = float((digit.sum(axis=0) * np.arange(width)).sum() / mass)
    top = min(max(round(centre - com_row), 0), field - height)
    left = min(max(round(centre - com_col), 0), field - width)
    placed = np.zeros((field, field))
    placed[top : top + height, left : left + width] = digit
    return placed


def load_digit(path: Path | str) -> np.ndarray:
    """Read an image file of one handwritten digit and prepare it as MNIST's were: 28x28 in [0, 1]."""
    return to_mnist(read_grayscale(path), str(path))
