"""The drawing page of ``python -m mnist_xp.export --html``, in a real browser.

Headless Chromium (Debian's ``chromium``, driven by Playwright) opens the exported page from
disk; the tests draw on it with real pointer events and compare what it computes with mnist-xp
in Python. Without Chromium or Playwright they skip.

Run as a script, this file makes the README's screenshot and figures:

    python tests/test_export_page.py [MODEL.npz]

(without MODEL.npz it trains one with ``--recipe fast``), draws a 7, a 4 and a 3, prints what
the page shows, and writes ``docs/digit-page.png``.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from small_model import small_run

import mnist_xp
from mnist_xp import Model, load_mnist, nn, webpage
from mnist_xp.cli import export
from mnist_xp.errors import ModelFileError
from mnist_xp.images import read_grayscale, to_mnist

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 760, "height": 540}


def _arc(cx, cy, rx, ry, start, stop, points=24):
    """Points along an elliptic arc, angles in degrees, y pointing down as on the pad."""
    angles = np.radians(np.linspace(start, stop, points))
    return [(round(cx + rx * math.cos(a), 1), round(cy + ry * math.sin(a), 1)) for a in angles]


STROKES = {
    "1": [[(125, 72), (152, 45), (152, 240)]],
    "7": [[(82, 58), (198, 58), (150, 150), (118, 238)]],
    "0": [_arc(140, 140, 58, 95, -100, 260, 40)],
    "3": [_arc(138, 92, 48, 44, -160, 90) + _arc(138, 185, 55, 50, -90, 160)[1:]],
    "4": [[(165, 45), (82, 175), (210, 175)], [(172, 100), (168, 242)]],
}
"""Digits as strokes of (x, y) points on the 280x280 pad, one list per pen-down."""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright):
    return playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)


# ---- drawing, on the page and in Python ------------------------------------------------------------


def draw(page, strokes, step: float = 20) -> None:
    """Draw ``strokes`` on ``#pad`` with the mouse: press, move along each polyline (an event every ``step``
    pixels or so), release."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
        page.mouse.down()
        for (x0, y0), (x, y) in itertools.pairwise(stroke):
            steps = max(1, math.ceil(math.hypot(x - x0, y - y0) / step))
            page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
        page.mouse.up()


DECODE = "(text) => new Float64Array(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer)"


def _base64(array: np.ndarray) -> str:
    """Arrays travel to the page as base64 float64 text: exact, and far quicker than lists of numbers."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def classify_in_page(page, X: np.ndarray) -> np.ndarray:
    """``window.mnistXp.classify`` on each row of ``X``."""
    script = f"""([text, n]) => {{
        const all = ({DECODE})(text);
        const out = [];
        for (let i = 0; i < all.length; i += n) out.push(window.mnistXp.classify(all.subarray(i, i + n)));
        return out;
    }}"""
    return np.array(page.evaluate(script, [_base64(X), X.shape[1]]))


def prepare_in_page(page, picture: np.ndarray) -> np.ndarray | None:
    """``window.mnistXp.prepare`` on a grayscale picture: its 28x28 digit, or None when it finds none."""
    height, width = picture.shape
    script = f"([text, w, h]) => window.mnistXp.prepare(({DECODE})(text), w, h)"
    digit = page.evaluate(script, [_base64(picture), width, height])
    return None if digit is None else np.array(digit).reshape(28, 28)


def pad_picture(page) -> np.ndarray:
    """The pad's pixels as Python reads an image file: the canvas saved as PNG, read with ``read_grayscale``."""
    url = page.evaluate("document.querySelector('#pad').toDataURL('image/png')")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pad.png"
        path.write_bytes(base64.b64decode(url.split(",", 1)[1]))
        return read_grayscale(path)


def render(strokes, pen: float, size: int = 280, supersample: int = 4) -> np.ndarray:
    """The strokes drawn in Python with Pillow as the pad draws them (black, round ends and joints, on
    white), antialiased by drawing ``supersample`` times larger and shrinking; grayscale in [0, 1]."""
    from PIL import Image, ImageDraw

    big = Image.new("L", (size * supersample, size * supersample), 255)
    pencil = ImageDraw.Draw(big)
    radius = pen * supersample / 2
    for stroke in strokes:
        # Pillow puts pixel k's centre at coordinate k; the canvas at k + 0.5.
        points = [(x * supersample - 0.5, y * supersample - 0.5) for x, y in stroke]
        pencil.line(points, fill=0, width=round(pen * supersample))
        for x, y in points:
            pencil.ellipse((x - radius + 0.5, y - radius + 0.5, x + radius - 0.5, y + radius - 0.5), fill=0)
    return np.asarray(big.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0


def aligned_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max, mean) absolute difference of two 28x28 digits, at the best whole-pixel shift of ``b`` by up to one
    pixel: centring moves a digit by whole pixels, so two renderings whose centres of mass lie near a half
    pixel may land one pixel apart."""
    shifts = [np.roll(b, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return min((float(np.abs(a - s).max()), float(np.abs(a - s).mean())) for s in shifts)


def shown(page) -> tuple[str, list[str]]:
    """The answer and the ten bars' texts, as the page shows them."""
    return page.locator("#answer").text_content(), page.locator("#bars .value").all_text_contents()


# ---- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra)")
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The suite's small model (``small_model.small_run``), saved, and exported by the command: ``(model, model_path, page_path)``."""
    folder = tmp_path_factory.mktemp("page")
    small_run()[0].model.save(folder / "small.npz")
    assert export.main([str(folder / "small.npz"), "--html", str(folder / "digit.html")]) == 0
    return Model.load(folder / "small.npz"), folder / "small.npz", folder / "digit.html"


def open_page(browser, path: Path, **options):
    """A new page showing ``path``; its ``errors`` and ``requests`` lists record what happened."""
    page = browser.new_page(viewport=VIEWPORT, **options)
    page.errors, page.requests = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(path.resolve().as_uri())
    return page


@pytest.fixture(scope="module")
def page(browser, trained):
    page = open_page(browser, trained[2])
    yield page
    assert page.errors == []
    page.close()


@pytest.fixture
def blank(page):
    """The shared page with its pad cleared by the Clear button."""
    page.get_by_role("button", name="Clear").click()
    assert page.locator("#answer").text_content() == ""
    return page


# ---- the tests -------------------------------------------------------------------------------------


def test_the_page_stands_alone_and_names_its_model(trained, page):
    _, model_path, page_path = trained
    text = page_path.read_text(encoding="utf-8")
    for outside in ("http://", "https://", "<link", " src=", "import("):
        assert outside not in text
    assert page.requests == [page_path.resolve().as_uri()]
    assert len(text) < 4 / 3 * model_path.stat().st_size + 40_000
    described = page.locator("#model").text_content()
    assert "784-64-10" in described and "ReLU" in described and "test accuracy" in described and "%" in described


def test_classify_gives_predict_probas_probabilities(trained, page):
    model = trained[0]
    X = load_mnist(limit=1).X_test[:200]
    got, expected = classify_in_page(page, X), model.predict_proba(X)
    assert np.abs(got - expected).max() <= 1e-5
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def random_model(activation: str, dtype: str, sizes=(784, 40, 20, 10)) -> Model:
    rng = np.random.default_rng(1)
    params = [
        (rng.normal(0, (2 / a) ** 0.5, (a, b)).astype(dtype), rng.normal(0, 0.1, b).astype(dtype))
        for a, b in itertools.pairwise(sizes)
    ]
    return Model(params, activation)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
def test_classify_with_every_activation(activation, dtype, browser, tmp_path):
    model = random_model(activation, dtype)
    model.to_html(tmp_path / "page.html")
    page = open_page(browser, tmp_path / "page.html")
    X = load_mnist(limit=1).X_test[:50]
    got = classify_in_page(page, X)
    assert np.abs(got - model.predict_proba(X)).max() <= (1e-5 if dtype == "float32" else 1e-12)
    assert page.evaluate("window.mnistXp.model.activation") == nn.ACTIVATIONS[activation].js_name
    assert page.errors == []
    page.close()


def test_the_script_runs_exactly_the_registrys_activations():
    """``digit.js`` has one forward function for each entry of ``nn.ACTIVATIONS``, under its ``js_name``."""
    script = (Path(webpage.__file__).parent / "web" / "digit.js").read_text(encoding="utf-8")
    table = re.search(r"const ACTIVATIONS = \{\n(.*?)\n  \};", script, re.DOTALL).group(1)
    keys = re.findall(r"^    (\w+):", table, re.MULTILINE)
    assert sorted(keys) == sorted(entry.js_name for entry in nn.ACTIVATIONS.values())


@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
def test_the_page_names_the_activation_as_the_registry_does(activation):
    model = random_model(activation, "float32", sizes=(784, 4, 10))
    entry = nn.ACTIVATIONS[activation]
    assert webpage.summary_line(model, "m.npz") == (
        f"Network 784-4-10, {entry.title}, float32 · test accuracy not recorded · from m.npz"
    )
    assert json.loads(webpage.network_json(model))["activation"] == entry.js_name


def test_model_to_html_writes_the_page_or_nothing(tmp_path):
    model = random_model("tanh", "float64", sizes=(784, 4, 10))
    model.extra["test_accuracy"] = 0.9123
    model.to_html(tmp_path / "page.html", "tanh.npz")
    text = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "Network 784-4-10, tanh, float64 · test accuracy 91.23 % · from tanh.npz" in text
    assert webpage.network_json(model) in text
    with pytest.raises(ModelFileError, match="10 outputs"):
        random_model("relu", "float32", sizes=(784, 4, 3)).to_html(tmp_path / "three.html")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["page.html"]


def test_the_pages_preparation_is_images_to_mnist(page):
    """``prepare`` against ``to_mnist`` on the README's image files: scans and photos, dark ink and light."""
    pictures = [read_grayscale(DOCS / name) for name in ("four.png", "three.jpg", "five-photo.jpg")]
    pictures.append(1.0 - pictures[0])  # light on dark
    pictures.append(pictures[1][30:200, 10:150])  # not square
    for picture in pictures:
        assert np.abs(prepare_in_page(page, picture) - to_mnist(picture)).max() <= 1e-6
    assert prepare_in_page(page, np.full((20, 30), 0.8)) is None


@pytest.mark.parametrize("digit", sorted(STROKES))
def test_a_drawn_digit_reads_as_in_python(digit, trained, blank, tmp_path):
    """Drawn with the mouse, the page sees what ``predict`` would see in a picture of the pad, and answers alike."""
    page, model = blank, trained[0]
    draw(page, STROKES[digit])
    seen = np.array(page.evaluate("window.mnistXp.seen()")).reshape(28, 28)
    assert np.abs(seen - to_mnist(pad_picture(page))).max() <= 1e-6
    worst, mean = aligned_difference(seen, to_mnist(render(STROKES[digit], page.evaluate("window.mnistXp.penWidth"))))
    assert worst <= 0.1 and mean <= 0.005
    probabilities = model.predict_proba(seen.reshape(1, -1))[0]
    answer, bars = shown(page)
    assert answer == str(probabilities.argmax())
    assert bars == [f"{100 * p:.1f} %" for p in probabilities]
    page.screenshot(path=tmp_path / f"drawn-{digit}.png")


def test_clear_empties_the_answer(blank):
    draw(blank, STROKES["7"])
    assert shown(blank)[0] != ""
    blank.get_by_role("button", name="Clear").click()
    assert shown(blank) == ("", [""] * 10)
    assert blank.evaluate("window.mnistXp.seen()") is None


def test_drawing_with_the_keyboard(trained, blank):
    pad = blank.locator("#pad")
    pad.focus()
    blank.keyboard.press("Space")  # pen down in the middle
    for _ in range(6):
        blank.keyboard.press("ArrowUp")
    for _ in range(12):
        blank.keyboard.press("ArrowDown")
    blank.keyboard.press("Space")
    seen = np.array(blank.evaluate("window.mnistXp.seen()"))
    assert shown(blank)[0] == str(trained[0].predict(seen.reshape(1, -1))[0])
    assert seen.reshape(28, 28)[7:21, 14].min() > 0.5  # a vertical bar down the middle
    blank.keyboard.press("Escape")
    assert shown(blank)[0] == ""
    blank.keyboard.press("Space")
    blank.keyboard.press("ArrowRight")
    blank.keyboard.press("Tab")  # to the Clear button
    blank.keyboard.press("Enter")
    assert shown(blank)[0] == ""


def test_drawing_with_a_finger(browser, trained):
    context = browser.new_context(has_touch=True, viewport=VIEWPORT)
    page = context.new_page()
    page.goto(trained[2].resolve().as_uri())
    box = page.locator("#pad").bounding_box()
    touch = context.new_cdp_session(page)
    stroke = STROKES["1"][0]
    for kind, (x, y) in zip(["touchStart"] + ["touchMove"] * (len(stroke) - 1), stroke):
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": box["x"] + x, "y": box["y"] + y}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    seen = np.array(page.evaluate("window.mnistXp.seen()"))
    assert np.abs(seen.reshape(28, 28) - to_mnist(pad_picture(page))).max() <= 1e-6
    assert shown(page)[0] == str(trained[0].predict(seen.reshape(1, -1))[0])
    context.close()


# ---- the README's screenshot and figures ------------------------------------------------------------


def make_docs(model_path: Path | None) -> None:
    """Export ``model_path`` (trained with --recipe fast when None), draw a 7, a 4 and a 3, print what the
    page shows and the parity with Python on the 10,000 test images, and save ``docs/digit-page.png``."""
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    if model_path is None:
        model_path = folder / "fast.npz"
        mnist_xp.train("fast").model.save(model_path)
    page_path = folder / "digit.html"
    assert export.main([str(model_path), "--html", str(page_path)]) == 0
    model = Model.load(model_path)
    print(f"page: {page_path.stat().st_size:,} bytes for a model file of {model_path.stat().st_size:,}")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, page_path)
        X = load_mnist().X_test
        got = np.concatenate([classify_in_page(page, X[i : i + 1000]) for i in range(0, len(X), 1000)])
        expected = model.predict_proba(X)
        print(
            f"classify vs Model.predict_proba on {len(X):,} test images: max difference "
            f"{np.abs(got - expected).max():.2e}, same answers {np.mean(got.argmax(1) == expected.argmax(1)):.2%}"
        )
        for digit in "743":
            page.get_by_role("button", name="Clear").click()
            draw(page, STROKES[digit])
            answer, bars = shown(page)
            print(f"drew a {digit}: #answer {answer!r}; bars " + ", ".join(f"{d}: {v}" for d, v in enumerate(bars)))
        page.screenshot(path=DOCS / "digit-page.png", full_page=True)
        assert page.errors == []
        browser.close()
    print(f"screenshot written to {DOCS / 'digit-page.png'}")


if __name__ == "__main__":
    make_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
