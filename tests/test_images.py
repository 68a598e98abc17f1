"""Image files to MNIST-style digits: the preparation's geometry, and recognition of real test digits saved as images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from small_model import small_model

Image = pytest.importorskip("PIL.Image", reason="needs Pillow: pip install 'mnist-xp[plot]'")

import mnist_xp
from mnist_xp import images, nn
from mnist_xp.errors import ImageError

DOCS = Path(__file__).resolve().parent.parent / "docs"
DIGITS = 300
TOLERANCE = 0.03


def centre_of_mass(digit):
    rows, cols = np.indices(digit.shape)
    return (rows * digit).sum() / digit.sum(), (cols * digit).sum() / digit.sum()


def test_a_dark_bar_on_paper_is_inverted_scaled_into_20x20_and_centred():
    paper = np.ones((90, 60))
    paper[10:70, 30:45] = 0.0  # a 60x15 dark bar, off-centre
    digit = images.to_mnist(paper)
    assert digit.shape == (28, 28) and digit.min() >= 0 and digit.max() <= 1
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    assert len(rows) == 20 and len(cols) == 5  # the long side fits 20, the aspect ratio 4:1 is kept
    assert centre_of_mass(digit) == pytest.approx((images.CENTRE, images.CENTRE), abs=0.5)
    assert digit.sum() == pytest.approx(20 * 5, rel=0.05)


def test_a_small_digit_is_scaled_up_to_fill_the_box():
    field = np.zeros((40, 40))
    field[30:35, 2:6] = 0.8  # a faint 5x4 blob near a corner, light on dark
    digit = images.to_mnist(field)
    assert np.flatnonzero(digit.any(axis=1)).size == 20
    assert centre_of_mass(digit) == pytest.approx((images.CENTRE, images.CENTRE), abs=0.5)


def test_an_mnist_digit_comes_back_nearly_unchanged_and_so_does_its_negative(tmp_path):
    digit = small_model()[2].X_test[0, :].reshape(28, 28).astype(np.float64)
    again = images.to_mnist(digit)
    assert np.abs(again - digit).mean() < 0.01
    np.testing.assert_allclose(images.to_mnist(1.0 - digit), again, atol=1e-6)


def lit_unevenly(height, width, seed=0):
    """Paper from dim on the left to bright on the right, with sensor noise (values 0..255)."""
    paper = np.linspace(140.0, 225.0, width)[None, :] + np.linspace(0.0, 20.0, height)[:, None]
    return paper + np.random.default_rng(seed).normal(0.0, 5.0, (height, width))


@pytest.mark.parametrize(
    "picture",
    [
        np.ones((30, 30)),
        np.zeros((30, 30)),
        0.97 + 0.03 * np.random.default_rng(0).random((30, 30)),
        np.clip(lit_unevenly(200, 200) / 255, 0, 1),
    ],
    ids=["white", "black", "faint-noise", "unevenly-lit-paper"],
)
def test_blank_pictures_are_refused(picture):
    with pytest.raises(ImageError, match="blank"):
        images.to_mnist(picture, "x.png")


def test_transparent_and_16_bit_images_read_as_on_white_paper(tmp_path):
    stroke = np.zeros((32, 32), dtype=np.uint8)
    stroke[4:28, 14:18] = 255
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = stroke  # black ink where opaque, transparent elsewhere
    Image.fromarray(rgba).save(tmp_path / "ink.png")
    Image.fromarray(((255 - stroke).astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    Image.fromarray(255 - stroke).save(tmp_path / "gray.png")
    expected = images.load_digit(tmp_path / "gray.png")
    np.testing.assert_allclose(images.load_digit(tmp_path / "ink.png"), expected, atol=1e-6)
    np.testing.assert_allclose(images.load_digit(tmp_path / "deep.png"), expected, atol=1e-6)


def test_load_digit_is_public_and_prepares_a_file_as_to_mnist_does():
    assert "load_digit" in mnist_xp.__all__
    for name in ("seven.png", "three.jpg"):
        path = DOCS / name
        np.testing.assert_array_equal(mnist_xp.load_digit(path), images.to_mnist(images.read_grayscale(path)))


def test_a_photo_is_turned_upright_as_its_exif_orientation_says(tmp_path):
    shape = np.full((40, 30), 255, dtype=np.uint8)
    shape[5:35, 5:10] = 0
    shape[30:35, 5:25] = 0  # an "L"
    Image.fromarray(shape).save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.rot90(shape)).save(tmp_path / "turned.png", exif=exif)
    np.testing.assert_allclose(images.load_digit(tmp_path / "turned.png"), images.load_digit(tmp_path / "upright.png"))


def mnist_png(digit):
    return Image.fromarray(digit)


def inverted_png(digit):
    return Image.fromarray(255 - digit)


def large_inverted_png(digit):
    """Dark on white, scaled up to 160x160 and set in a 200x200 sheet with a 20-pixel margin."""
    sheet = Image.new("L", (200, 200), 255)
    sheet.paste(inverted_png(digit).resize((160, 160), Image.Resampling.BICUBIC), (20, 20))
    return sheet


def photographed_jpeg(digit):
    """Grey pencil on unevenly lit, noisy paper, 200x200, saved as a JPEG."""
    ink = np.asarray(Image.fromarray(digit).resize((160, 160), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    sheet = lit_unevenly(200, 200)
    sheet[20:180, 20:180] -= 100.0 * np.clip(ink, 0, 1)
    return Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8)), "jpg"


@pytest.mark.parametrize("make", [mnist_png, inverted_png, large_inverted_png, photographed_jpeg])
def test_test_digits_saved_as_png_are_recognized_as_often_as_the_raw_digits(tmp_path, make):
    params, _, dataset = small_model()
    raw = np.rint(dataset.X_test[:DIGITS, :] * 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = dataset.y_test[:DIGITS]
    prepared = []
    for i, digit in enumerate(raw):
        made = make(digit)
        picture, suffix = made if isinstance(made, tuple) else (made, "png")
        path = tmp_path / f"{i}.{suffix}"
        picture.save(path)
        prepared.append(images.load_digit(path))

    def accuracy(X):
        predicted = nn.predicted_class(nn.predict(params, X.reshape(DIGITS, -1).astype(np.float32)))
        return float(np.mean(predicted == labels))

    raw_accuracy = accuracy(raw / 255.0)
    assert raw_accuracy > 0.8
    assert accuracy(np.stack(prepared)) == pytest.approx(raw_accuracy, abs=TOLERANCE)
