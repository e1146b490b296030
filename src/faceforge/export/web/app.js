/* faceforge browser bundle: classify the webcam's faces entirely in this page, with onnxruntime-web.
 *
 * detector.onnx takes the frame as uint8 [H, W, 3] RGB and returns boxes, scores and the 5 landmarks (the
 * letterbox, anchor decoding and NMS are inside it). Each face is aligned as model.json's `inputs[].alignment`
 * says (a similarity transform of the 5 landmarks to `reference_points`, or a square box crop), warped with
 * bilinear sampling and a replicated border like cv2.warpAffine, and all chips of a frame go to classifier.onnx
 * in one batch. Nothing is fetched from outside this folder. The last results are on `window.faceforge`.
 */
import * as ort from './ort.wasm.bundle.min.mjs';

const state = {
  ready: false, running: false, error: null, frames: 0, faces: [], model: null,
  timing: { detect_ms: null, classify_ms: null, per_face_ms: null, frames_timed: 0, classify_total_ms: 0, faces_total: 0 },
};
window.faceforge = state;

const $ = (id) => document.getElementById(id);
const status = (t) => { $('status').textContent = t; };
function fail(e) {
  state.error = String(e && e.message ? e.message : e);
  $('error').textContent = state.error;
  $('error').hidden = false;
  console.error(e);
}

// -- geometry ------------------------------------------------------------------------------------
/** Least-squares similarity (rotation, uniform scale, translation) src -> dst, as faceforge.align.umeyama. */
export function similarity(src, dst) {
  const n = src.length;
  let msx = 0, msy = 0, mdx = 0, mdy = 0;
  for (let i = 0; i < n; i++) { msx += src[i][0]; msy += src[i][1]; mdx += dst[i][0]; mdy += dst[i][1]; }
  msx /= n; msy /= n; mdx /= n; mdy /= n;
  let ss = 0, a = 0, b = 0;
  for (let i = 0; i < n; i++) {
    const sx = src[i][0] - msx, sy = src[i][1] - msy, dx = dst[i][0] - mdx, dy = dst[i][1] - mdy;
    ss += sx * sx + sy * sy; a += sx * dx + sy * dy; b += sx * dy - sy * dx;
  }
  if (ss < 1e-12) throw new Error('landmarks are all at one point; cannot align this face');
  a /= ss; b /= ss;
  return [a, -b, mdx - (a * msx - b * msy), b, a, mdy - (b * msx + a * msy)];
}

/** faceforge.align.box_transform: a square of `margin` x the longer box side around the (shifted) centre. */
export function boxTransform(box, size, margin = 1.0, shift = 0.0) {
  const [x1, y1, x2, y2] = box;
  const side = Math.max(x2 - x1, y2 - y1, 1.0) * margin;
  const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2 + shift * (y2 - y1);
  const s = size / side;
  return [s, 0, size / 2 - s * cx, 0, s, size / 2 - s * cy];
}

/** cv2.warpAffine(INTER_LINEAR, BORDER_REPLICATE) of RGBA `src` (w x h) by image->chip affine `m` into `out`
 * (size x size x 3 uint8 RGB) at `offset`. */
export function warp(src, w, h, m, size, out, offset) {
  const det = m[0] * m[4] - m[1] * m[3];
  const i0 = m[4] / det, i1 = -m[1] / det, i3 = -m[3] / det, i4 = m[0] / det;
  const i2 = -(i0 * m[2] + i1 * m[5]), i5 = -(i3 * m[2] + i4 * m[5]);
  let o = offset;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const sx = i0 * x + i1 * y + i2, sy = i3 * x + i4 * y + i5;
      const fx = Math.floor(sx), fy = Math.floor(sy);
      const ax = sx - fx, ay = sy - fy;
      const x0 = Math.min(Math.max(fx, 0), w - 1), x1 = Math.min(Math.max(fx + 1, 0), w - 1);
      const y0 = Math.min(Math.max(fy, 0), h - 1), y1 = Math.min(Math.max(fy + 1, 0), h - 1);
      const p00 = (y0 * w + x0) * 4, p01 = (y0 * w + x1) * 4, p10 = (y1 * w + x0) * 4, p11 = (y1 * w + x1) * 4;
      for (let c = 0; c < 3; c++) {
        const top = src[p00 + c] + (src[p01 + c] - src[p00 + c]) * ax;
        const bot = src[p10 + c] + (src[p11 + c] - src[p10 + c]) * ax;
        out[o++] = Math.round(top + (bot - top) * ay);
      }
    }
  }
}

function chipTransform(align, face) {
  if (align.method === 'box') { // a per-detector crop (framing) for the bundle's own detector, if the model has one
    const [margin, shift] = (align.framing || {})[sidecar.detector?.model] ?? [align.margin ?? 1.0, align.shift ?? 0.0];
    return boxTransform(face.box, align.size, margin, shift);
  }
  return similarity(face.landmarks, align.reference_points); // 'similarity', and dlib5's approximation
}

// -- the model -----------------------------------------------------------------------------------
let detector, classifier, sidecar, video, frame, frameCtx, overlay, snapshot;

async function load() {
  if (location.protocol === 'file:') {
    throw new Error('Open this page through a local web server, not as a file: browsers do not load WebAssembly '
      + 'from file:// pages. In this folder run: python3 -m http.server 8000, then open http://localhost:8000/');
  }
  ort.env.wasm.numThreads = 1; // no SharedArrayBuffer needed, any static server works
  // the wasm beside this page; the loader inside ort.wasm.bundle.min.mjs is used as it is
  ort.env.wasm.wasmPaths = { wasm: new URL('ort-wasm-simd-threaded.wasm', import.meta.url).href };
  sidecar = await (await fetch('model.json')).json();
  state.model = { labels: sidecar.labels, task: sidecar.task, name: sidecar.model && sidecar.model.name };
  $('model-name').textContent = (sidecar.model && sidecar.model.name) || 'model';
  $('model-labels').textContent = sidecar.task === 'regression' ? 'regression' : sidecar.labels.join(', ');
  status('loading the models…');
  const opts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  detector = await ort.InferenceSession.create('detector.onnx', opts);
  classifier = await ort.InferenceSession.create('classifier.onnx', opts);
}

function labelOf(out, i, n) {
  if (sidecar.task === 'regression') {
    const v = out.value.data[i];
    return { label: v.toFixed(1), score: v, value: v };
  }
  const k = sidecar.labels.length;
  const p = Array.from(out.probabilities.data.slice(i * k, (i + 1) * k));
  let best = 0;
  for (let j = 1; j < k; j++) if (p[j] > p[best]) best = j;
  let label = sidecar.labels[best], score = p[best];
  const known = out.unknown_score ? out.unknown_score.data[i] : null;
  if (out.accepted && !out.accepted.data[i]) {
    label = sidecar.rejected_label || 'unknown';
    const r = sidecar.labels.indexOf(label);
    if (r >= 0) score = p[r];
  }
  return { label, score, probabilities: p, unknown_score: known, n };
}

async function step() {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return;
  if (frame.width !== w || frame.height !== h) {
    frame.width = w; frame.height = h; overlay.width = w; overlay.height = h;
  }
  frameCtx.drawImage(video, 0, 0, w, h);
  const rgba = frameCtx.getImageData(0, 0, w, h).data;
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4) { rgb[j++] = rgba[i]; rgb[j++] = rgba[i + 1]; rgb[j++] = rgba[i + 2]; }
  const t0 = performance.now();
  const det = await detector.run({ image: new ort.Tensor('uint8', rgb, [h, w, 3]) });
  const t1 = performance.now();
  const n = det.scores.dims[0];
  const faces = [];
  for (let i = 0; i < n; i++) {
    const b = Array.from(det.boxes.data.slice(i * 4, i * 4 + 4));
    const lm = [];
    for (let j = 0; j < 5; j++) lm.push([det.landmarks.data[i * 10 + j * 2], det.landmarks.data[i * 10 + j * 2 + 1]]);
    faces.push({ box: b, score: det.scores.data[i], landmarks: lm });
  }
  let t2 = t1;
  if (n) {
    const feeds = {};
    for (const inp of sidecar.inputs) {
      const s = inp.alignment.size;
      const chips = new Uint8Array(n * s * s * 3);
      faces.forEach((f, i) => warp(rgba, w, h, chipTransform(inp.alignment, f), s, chips, i * s * s * 3));
      feeds[inp.name] = new ort.Tensor('uint8', chips, [n, s, s, 3]);
    }
    const t15 = performance.now();
    const out = await classifier.run(feeds);
    t2 = performance.now();
    faces.forEach((f, i) => Object.assign(f, labelOf(out, i, n)));
    const tm = state.timing;
    tm.classify_ms = t2 - t15;
    tm.classify_total_ms += t2 - t15;
    tm.faces_total += n;
    tm.frames_timed += 1;
    tm.per_face_ms = tm.classify_total_ms / tm.faces_total;
  }
  state.timing.detect_ms = t1 - t0;
  snapshot.width = w; snapshot.height = h;
  snapshot.getContext('2d').drawImage(frame, 0, 0);
  state.faces = faces;
  state.frames += 1;
  draw(faces);
  $('timing').textContent = `detect ${state.timing.detect_ms.toFixed(1)} ms` + (state.timing.per_face_ms == null ? ''
    : `, classify ${state.timing.per_face_ms.toFixed(1)} ms per face`);
  $('labels').textContent = faces.map((f) => `${f.label} ${typeof f.score === 'number' ? f.score.toFixed(2) : ''}`).join(' | ');
}

function draw(faces) {
  const g = overlay.getContext('2d');
  g.clearRect(0, 0, overlay.width, overlay.height);
  g.lineWidth = 2;
  g.font = '16px sans-serif';
  for (const f of faces) {
    const [x1, y1, x2, y2] = f.box;
    g.strokeStyle = '#2fd07a';
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${f.label}${sidecar.task === 'regression' ? '' : ` ${(f.score * 100).toFixed(0)}%`}`;
    const tw = g.measureText(text).width + 8;
    g.fillStyle = 'rgba(0,0,0,0.65)';
    g.fillRect(x1, Math.max(0, y1 - 22), tw, 22);
    g.fillStyle = '#fff';
    g.fillText(text, x1 + 4, Math.max(16, y1 - 6));
  }
}

async function loop() {
  while (state.running) {
    try { await step(); } catch (e) { fail(e); state.running = false; break; }
    await new Promise((r) => setTimeout(r, 0));
  }
}

/** Stop the loop (the last results stay on window.faceforge). */
state.stop = () => { state.running = false; status('stopped'); $('start').disabled = !state.ready; };
/** The frame the last results are for, as a PNG data URL (lossless, for comparisons). */
state.frameDataURL = () => snapshot.toDataURL('image/png');

async function start() {
  $('start').disabled = true;
  try {
    if (!video.srcObject) {
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
      await video.play();
    }
    state.running = true;
    status('running');
    loop();
  } catch (e) {
    fail(e);
    $('start').disabled = false;
  }
}

async function main() {
  video = $('video');
  overlay = $('overlay');
  frame = document.createElement('canvas');
  frameCtx = frame.getContext('2d', { willReadFrequently: true });
  snapshot = document.createElement('canvas');
  $('start').addEventListener('click', start);
  $('stop').addEventListener('click', () => state.stop());
  try {
    await load();
    state.ready = true;
    status('ready: press Start camera');
    $('start').disabled = false;
    if (new URLSearchParams(location.search).has('autostart')) start();
  } catch (e) {
    fail(e);
    status('could not start');
  }
}

main();
