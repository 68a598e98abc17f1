"use strict";
// Draw a digit and watch the network read it. Three parts, top to bottom: the network (weights
// and forward pass), the preparation of a drawing (a port of mnist_xp/images.py's to_mnist), and
// the page (pad, keyboard, answer). window.mnistXp.classify(pixels) is the hook for tests.
(function () {
  // ---- The network ---------------------------------------------------------------------------

  /** A base64 text of little-endian float32 or float64 values, as numbers. */
  function decodeArray(text, dtype) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const view = new DataView(bytes.buffer);
    const size = dtype === "float64" ? 8 : 4;
    const values = new Float64Array(bytes.length / size);
    for (let i = 0; i < values.length; i++) {
      values[i] = size === 8 ? view.getFloat64(i * 8, true) : view.getFloat32(i * 4, true);
    }
    return values;
  }

  const spec = JSON.parse(document.getElementById("network").textContent);
  const layers = spec.layers.map((layer) => ({
    inputs: layer.inputs,
    outputs: layer.outputs,
    W: decodeArray(layer.W, spec.dtype), // (inputs, outputs), row by row
    b: decodeArray(layer.b, spec.dtype),
  }));

  // One function for each of nn.ACTIVATIONS, keyed by its js_name.
  const ACTIVATIONS = {
    relu: (z) => (z > 0 ? z : 0),
    leakyRelu: (z) => (z > 0 ? z : spec.leakyReluSlope * z),
    sigmoid: (z) => 0.5 * (Math.tanh(0.5 * z) + 1), // as nn.sigmoid: no exponential to overflow
    tanh: Math.tanh,
  };
  const hidden = ACTIVATIONS[spec.activation];
  if (hidden === undefined) throw new Error(`no forward pass for the activation ${spec.activation}`);

  /** Softmax of the logits, with their maximum subtracted so that no exponential overflows. */
  function softmax(logits) {
    const top = Math.max(...logits);
    const exponentials = logits.map((z) => Math.exp(z - top));
    const total = exponentials.reduce((sum, e) => sum + e, 0);
    return exponentials.map((e) => e / total);
  }

  /** The class probabilities for one image: 784 numbers in [0, 1], row by row. */
  function classify(pixels) {
    if (pixels.length !== layers[0].inputs) {
      throw new Error(`classify needs ${layers[0].inputs} pixels, got ${pixels.length}`);
    }
    let a = Float64Array.from(pixels);
    layers.forEach((layer, index) => {
      const z = Float64Array.from(layer.b);
      for (let i = 0; i < layer.inputs; i++) {
        const x = a[i];
        if (x === 0) continue;
        const row = i * layer.outputs;
        for (let j = 0; j < layer.outputs; j++) z[j] += x * layer.W[row + j];
      }
      a = index < layers.length - 1 ? z.map(hidden) : z;
    });
    const probabilities = a.length === 1 ? [ACTIVATIONS.sigmoid(a[0])] : softmax(Array.from(a));
    return Array.from(probabilities);
  }

  // ---- The preparation: mnist_xp/images.py's to_mnist, step for step ------------------------
  // Images are {width, height, data}, data a Float64Array row by row. Pillow resizes "F" images
  // in float32, so the resampler rounds where Pillow stores, to give the same pixels.

  const FIELD = 28;
  const BOX = 20;
  const CENTRE = 14.0;
  const MIN_CONTRAST = 0.1;
  const INK_THRESHOLD = 0.1;
  const NOISE_LIMIT = 5.0;
  const BACKGROUND_SIDE = 64;
  const BACKGROUND_WINDOW = 15;

  /** Python's round(): halves go to the even neighbour. */
  function roundHalfEven(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  function median(values) {
    const sorted = Float64Array.from(values).sort();
    const half = sorted.length >> 1;
    return sorted.length % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
  }

  function border(image) {
    const { width: w, height: h, data } = image;
    const values = [];
    for (let x = 0; x < w; x++) values.push(data[x]);
    for (let x = 0; x < w; x++) values.push(data[(h - 1) * w + x]);
    for (let y = 0; y < h; y++) values.push(data[y * w]);
    for (let y = 0; y < h; y++) values.push(data[y * w + w - 1]);
    return values;
  }

  function sinc(x) {
    if (x === 0) return 1;
    const px = x * Math.PI;
    return Math.sin(px) / px;
  }

  // Pillow's resampling filters and their supports.
  const FILTERS = {
    box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
    bilinear: { support: 1, weight: (x) => Math.max(0, 1 - Math.abs(x)) },
    lanczos: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  };

  /** For each output position, the first input index and the normalized weights (Pillow's coefficients). */
  function coefficients(inSize, outSize, filter) {
    const scale = inSize / outSize;
    const filterScale = Math.max(scale, 1);
    const support = filter.support * filterScale;
    const result = [];
    for (let o = 0; o < outSize; o++) {
      const centre = (o + 0.5) * scale;
      const first = Math.max(Math.trunc(centre - support + 0.5), 0);
      const end = Math.min(Math.trunc(centre + support + 0.5), inSize);
      const weights = [];
      for (let i = first; i < end; i++) weights.push(filter.weight((i - centre + 0.5) / filterScale));
      const total = weights.reduce((sum, w) => sum + w, 0);
      result.push({ first, weights: total !== 0 ? weights.map((w) => w / total) : weights });
    }
    return result;
  }

  /** The image resized to width x height as Pillow's Image.resize does for float32 images. */
  function resize(image, width, height, filterName) {
    const filter = FILTERS[filterName];
    const source = Float32Array.from(image.data);
    if (width === image.width && height === image.height) {
      return { width, height, data: Float64Array.from(source) };
    }
    const rows = coefficients(image.height, height, filter);
    const top = rows[0].first;
    const bottom = rows[height - 1].first + rows[height - 1].weights.length;
    let band = source.subarray(top * image.width, bottom * image.width);
    if (width !== image.width) {
      const cols = coefficients(image.width, width, filter);
      const across = new Float32Array((bottom - top) * width);
      for (let y = 0; y < bottom - top; y++) {
        for (let x = 0; x < width; x++) {
          const { first, weights } = cols[x];
          let sum = 0;
          for (let k = 0; k < weights.length; k++) sum += band[y * image.width + first + k] * weights[k];
          across[y * width + x] = sum;
        }
      }
      band = across;
    }
    if (height === image.height) return { width, height, data: Float64Array.from(band) };
    const out = new Float32Array(width * height);
    for (let y = 0; y < height; y++) {
      const { first, weights } = rows[y];
      for (let x = 0; x < width; x++) {
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += band[(first - top + k) * width + x] * weights[k];
        out[y * width + x] = sum;
      }
    }
    return { width, height, data: Float64Array.from(out) };
  }

  // The reductions over a window: min, and mean rounded to float32 as NumPy's mean of float32 values.
  const REDUCE = {
    min: { start: Infinity, add: Math.min, end: (total) => total },
    mean: { start: 0, add: (total, v) => total + v, end: (total, count) => Math.fround(total / count) },
  };

  /** The min or mean over the size x size window around each pixel, edges repeated: rows, then columns. */
  function overWindows(image, reduce, size = BACKGROUND_WINDOW) {
    const { width: w, height: h } = image;
    const half = size >> 1;
    const clamp = (i, n) => Math.min(Math.max(i, 0), n - 1);
    const pass = (data, along) => {
      const out = new Float64Array(w * h);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let total = reduce.start;
          for (let k = -half; k <= half; k++) {
            const i = along === "y" ? clamp(y + k, h) * w + x : y * w + clamp(x + k, w);
            total = reduce.add(total, data[i]);
          }
          out[y * w + x] = reduce.end(total, size);
        }
      }
      return out;
    };
    return { width: w, height: h, data: pass(pass(image.data, "y"), "x") };
  }

  /** The local background level of a light-on-dark picture (see images.background). */
  function background(image) {
    const scale = Math.min(1, BACKGROUND_SIDE / Math.max(image.width, image.height));
    const width = Math.max(1, roundHalfEven(image.width * scale));
    const height = Math.max(1, roundHalfEven(image.height * scale));
    const small = resize(image, width, height, "box");
    const level = overWindows(overWindows(small, REDUCE.min), REDUCE.mean);
    return resize(level, image.width, image.height, "bilinear");
  }

  function noiseLevel(ink) {
    const values = border(ink);
    const middle = median(values);
    return 1.4826 * median(values.map((v) => Math.abs(v - middle)));
  }

  /** Scale so that the longer side is BOX pixels, keeping the aspect ratio (Lanczos, as Pillow). */
  function fitInBox(digit) {
    const scale = BOX / Math.max(digit.width, digit.height);
    const width = Math.max(1, roundHalfEven(digit.width * scale));
    const height = Math.max(1, roundHalfEven(digit.height * scale));
    const resized = resize(digit, width, height, "lanczos");
    resized.data = resized.data.map((v) => Math.min(Math.max(v, 0), 1));
    return resized;
  }

  /** Place the digit in the 28x28 field with its centre of mass nearest the centre, whole pixels. */
  function centreInField(digit) {
    const { width: w, height: h, data } = digit;
    let mass = 0;
    let rowMoment = 0;
    let colMoment = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = data[y * w + x];
        mass += v;
        rowMoment += v * y;
        colMoment += v * x;
      }
    }
    const top = Math.min(Math.max(roundHalfEven(CENTRE - rowMoment / mass), 0), FIELD - h);
    const left = Math.min(Math.max(roundHalfEven(CENTRE - colMoment / mass), 0), FIELD - w);
    const field = new Float64Array(FIELD * FIELD);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) field[(top + y) * FIELD + left + x] = data[y * w + x];
    }
    return field;
  }

  /**
   * The 28x28 digit (784 numbers, light on dark) the network reads from a grayscale picture
   * (values in [0, 1], 0 black), or null when no digit stands out: images.to_mnist in JavaScript.
   */
  function prepare(pixels, width, height) {
    let gray = Float64Array.from(pixels);
    if (median(border({ width, height, data: gray })) >= 0.5) gray = gray.map((v) => 1 - v);
    const level = background({ width, height, data: gray }).data;
    const ink = { width, height, data: gray.map((v, i) => v - level[i]) };
    let contrast = -Infinity;
    for (const v of ink.data) contrast = Math.max(contrast, v);
    const noise = noiseLevel(ink);
    if (!(contrast >= Math.max(MIN_CONTRAST, NOISE_LIMIT * noise))) return null;
    const threshold = Math.max(INK_THRESHOLD * contrast, NOISE_LIMIT * noise);
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (ink.data[i] < threshold) {
          ink.data[i] = 0;
          continue;
        }
        ink.data[i] = Math.min(ink.data[i] / contrast, 1);
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
    const digit = { width: x1 - x0 + 1, height: y1 - y0 + 1, data: null };
    digit.data = new Float64Array(digit.width * digit.height);
    for (let y = 0; y < digit.height; y++) {
      for (let x = 0; x < digit.width; x++) digit.data[y * digit.width + x] = ink.data[(y0 + y) * width + x0 + x];
    }
    return centreInField(fitInBox(digit));
  }

  // ---- The page -------------------------------------------------------------------------------

  const PEN_WIDTH = 20;
  const KEY_STEP = 14;
  const SMALL_KEY_STEP = 4;

  const pad = document.getElementById("pad");
  const ink = pad.getContext("2d", { alpha: false, willReadFrequently: true });
  const seen = document.getElementById("seen").getContext("2d");
  const answer = document.getElementById("answer");
  const cursor = document.getElementById("cursor");
  const bars = [];
  let inked = false;
  let stroke = null; // the last point of the pointer stroke being drawn
  let frame = 0;
  let lastSeen = null;
  const keyPen = { x: pad.width / 2, y: pad.height / 2, down: false };

  for (let digit = 0; digit < 10; digit++) {
    const item = document.createElement("li");
    item.innerHTML = `<span>${digit}</span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
    document.getElementById("bars").append(item);
    bars.push({ item, fill: item.querySelector(".fill"), value: item.querySelector(".value") });
  }

  function clearPad() {
    ink.fillStyle = "#fff";
    ink.fillRect(0, 0, pad.width, pad.height);
    ink.fillStyle = ink.strokeStyle = "#000";
    ink.lineWidth = PEN_WIDTH;
    ink.lineCap = ink.lineJoin = "round";
    inked = false;
    stroke = null;
    keyPen.down = false;
    showCursor();
    refresh();
  }

  function dot(point) {
    ink.beginPath();
    ink.arc(point.x, point.y, PEN_WIDTH / 2, 0, 2 * Math.PI);
    ink.fill();
    inked = true;
  }

  function line(from, to) {
    ink.beginPath();
    ink.moveTo(from.x, from.y);
    ink.lineTo(to.x, to.y);
    ink.stroke();
    inked = true;
  }

  /** The pad's grayscale pixels in [0, 1], converted as Pillow converts RGB to L. */
  function padPixels() {
    const rgba = ink.getImageData(0, 0, pad.width, pad.height).data;
    const gray = new Float64Array(pad.width * pad.height);
    for (let i = 0; i < gray.length; i++) {
      const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
      gray[i] = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) / 255;
    }
    return gray;
  }

  function showSeen(image) {
    const picture = seen.createImageData(FIELD, FIELD);
    for (let i = 0; i < FIELD * FIELD; i++) {
      const level = image ? Math.round(255 * image[i]) : 0;
      picture.data.set([level, level, level, 255], 4 * i);
    }
    seen.putImageData(picture, 0, 0);
  }

  function showAnswer(probabilities) {
    const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    answer.textContent = top < 0 ? "" : String(top);
    bars.forEach((bar, digit) => {
      const p = probabilities ? probabilities[digit] : 0;
      bar.fill.style.width = `${(100 * p).toFixed(1)}%`;
      bar.value.textContent = probabilities ? `${(100 * p).toFixed(1)} %` : "";
      bar.item.classList.toggle("top", digit === top);
    });
  }

  /** Prepare the drawing, classify it and show the result (now). */
  function refresh() {
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    lastSeen = inked ? prepare(padPixels(), pad.width, pad.height) : null;
    showSeen(lastSeen);
    showAnswer(lastSeen ? classify(lastSeen) : null);
  }

  /** Refresh at the next frame, at most once a frame, while drawing. */
  function refreshSoon() {
    if (!frame) frame = requestAnimationFrame(refresh);
  }

  function padPoint(event) {
    const box = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * pad.width) / box.width,
      y: ((event.clientY - box.top) * pad.height) / box.height,
    };
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    cursor.hidden = true;
    stroke = padPoint(event);
    dot(stroke);
    refreshSoon();
  });

  pad.addEventListener("pointermove", (event) => {
    if (!stroke) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of events.length ? events : [event]) {
      const point = padPoint(each);
      line(stroke, point);
      stroke = point;
    }
    refreshSoon();
  });

  function endStroke() {
    if (!stroke) return;
    stroke = null;
    refresh();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  function showCursor(visible = !cursor.hidden) {
    cursor.hidden = !visible;
    cursor.style.left = `${(100 * keyPen.x) / pad.width}%`;
    cursor.style.top = `${(100 * keyPen.y) / pad.height}%`;
    cursor.classList.toggle("down", keyPen.down);
  }

  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  pad.addEventListener("keydown", (event) => {
    if (event.key in ARROWS) {
      const step = event.shiftKey ? SMALL_KEY_STEP : KEY_STEP;
      const [dx, dy] = ARROWS[event.key];
      const from = { x: keyPen.x, y: keyPen.y };
      keyPen.x = Math.min(Math.max(keyPen.x + dx * step, 0), pad.width);
      keyPen.y = Math.min(Math.max(keyPen.y + dy * step, 0), pad.height);
      if (keyPen.down) {
        line(from, keyPen);
        refresh();
      }
    } else if (event.key === " " || event.key === "Enter") {
      keyPen.down = !keyPen.down;
      if (keyPen.down) {
        dot(keyPen);
        refresh();
      }
    } else if (event.key === "Escape" || event.key === "Delete" || event.key === "Backspace") {
      clearPad();
    } else {
      return;
    }
    event.preventDefault();
    showCursor(true);
  });
  pad.addEventListener("blur", () => {
    keyPen.down = false;
    showCursor(false);
  });

  document.getElementById("clear").addEventListener("click", clearPad);
  clearPad();

  window.mnistXp = {
    classify,
    prepare,
    /** The 784 pixels the network saw last, or null while nothing is drawn. */
    seen: () => (lastSeen ? Array.from(lastSeen) : null),
    model: { layerSizes: spec.layerSizes, activation: spec.activation, dtype: spec.dtype },
    penWidth: PEN_WIDTH,
  };
})();
