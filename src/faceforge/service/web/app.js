/* faceforge web page: plain JavaScript, no build step, nothing fetched from outside this server.
 *
 * Stable element ids (for people and for browser tests):
 *
 *   Tabs        #tab-train #tab-live #tab-photo #tab-people #tab-models  (panels: #panel-<name>)
 *   API key     #key-button (header, shown when the server needs a key), #key-dialog, #key-input,
 *               #key-save, #key-cancel, #key-message. The key lives in localStorage "faceforge.apiKey"
 *               and goes out as X-API-Key (and ?key= on the WebSocket and download links).
 *   Toast       #toast (short notices)
 *
 *   Train       #train-classes (the class cards), #train-add-class.
 *               Class card N (N = 0, 1, ... in order of creation; never reused; the page starts
 *               with classes 0 and 1):  #class-N, #class-name-N (text input), #class-webcam-N (opens
 *               the webcam in this card), #class-upload-N (file input, multiple), #class-count-N
 *               (number of photos), #class-thumbs-N, #class-clear-N, #class-remove-N.
 *               Webcam panel (moves into the class card it records for): #train-camera, #train-video,
 *               #train-record ("Hold to record": a photo every 150 ms while pressed), #train-capture,
 *               #train-camera-close.
 *               #train-model-name, #train-embedder (dlib-resnet | agegender | effnet-lite0),
 *               #train-embedder-help, #train-head, #train-augment, #train-replace, #train-start,
 *               #train-progress (bar), #train-status, #train-error, #train-result (shown when done),
 *               #train-accuracy, #train-balanced, #train-confusion (table), #train-problems,
 *               #train-try-live, #train-try-photo.
 *
 *   Live        #live-models (one checkbox per model: input[value="<model name>"]),
 *               #live-attr-gender #live-attr-age #live-attr-emotion, #live-gallery (select; "" = none),
 *               #live-mirror, #live-start, #live-stop, #live-video, #live-overlay (canvas),
 *               #live-fps, #live-latency, #live-server-ms, #live-status, #live-error,
 *               #live-labels (one line per face, e.g. "#3 alice 0.93 · female · happy").
 *
 *   Photo       #photo-file (file input; choosing a file analyses it), #photo-url, #photo-url-go,
 *               #photo-models (checkboxes as in Live), #photo-attr-gender/-age/-emotion, #photo-gallery,
 *               #photo-again, #photo-status, #photo-error, #photo-result, #photo-canvas, #photo-table.
 *
 *   People      #people-gallery (text input with suggestions), #people-person, #people-files (file input),
 *               #people-camera-start, #people-video, #people-capture, #people-camera-stop,
 *               #people-pending (thumbnails), #people-pending-count, #people-clear, #people-enrol,
 *               #people-report, #people-error, #people-list (table; rows tr[data-person="<name>"] with
 *               td.person-faces and button.person-delete), #people-empty, #people-delete-gallery.
 *
 *   Models      #models-list (table; rows tr[data-model="<name>"] with button.model-download and
 *               button.model-delete), #models-empty, #models-error, #models-upload-file,
 *               #models-upload-name, #models-upload-replace, #models-upload, #models-status.
 *
 *   Delete buttons ask for a second click ("Sure?") within 4 seconds.
 */
'use strict';

// ------------------------------------------------------------------------------------ helpers
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ATTRIBUTES = ['gender', 'age', 'emotion'];
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$/;
const PALETTE = ['#6366f1', '#f97316', '#10b981', '#ec4899', '#0ea5e9', '#eab308', '#8b5cf6', '#ef4444'];

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(elem, on = true) { elem.hidden = !on; }

function showError(box, err) {
  const msg = err ? (err.message || String(err)) : '';
  box.textContent = msg;
  show(box, !!msg);
}

let toastTimer = null;
function toast(msg, ms = 3000) {
  const t = $('#toast');
  t.textContent = msg;
  show(t);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(t, false), ms);
}

function pct(x) {
  return typeof x === 'number' && isFinite(x) ? `${Math.round(x * 1000) / 10}%` : '–';
}

function checkName(name, what) {
  if (!NAME_RE.test(name)) {
    throw new Error(`${what} "${name}" is not allowed: use 1–64 letters, digits, spaces, "_", "." or "-", ` +
                    'starting with a letter or digit.');
  }
  return name;
}

// Two clicks to delete: the first arms the button for 4 s.
function confirmClick(button, action) {
  button.addEventListener('click', async () => {
    if (!button.classList.contains('armed')) {
      button.dataset.label = button.textContent;
      button.textContent = 'Sure?';
      button.classList.add('armed');
      setTimeout(() => {
        if (button.classList.contains('armed')) {
          button.classList.remove('armed');
          button.textContent = button.dataset.label;
        }
      }, 4000);
      return;
    }
    button.classList.remove('armed');
    button.textContent = button.dataset.label;
    await action();
  });
}

// ----------------------------------------------------------------------------- API and key
const KEY_STORE = 'faceforge.apiKey';
let apiKey = '';
try { apiKey = localStorage.getItem(KEY_STORE) || ''; } catch (e) { /* storage off */ }
let keyPrompt = null;

function askKey(message) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve, reject) => {
    const dlg = $('#key-dialog');
    const input = $('#key-input');
    $('#key-message').textContent = message;
    input.value = apiKey;
    show(dlg);
    setTimeout(() => input.focus(), 0);
    const done = (ok) => {
      show(dlg, false);
      $('#key-save').removeEventListener('click', onSave);
      $('#key-cancel').removeEventListener('click', onCancel);
      input.removeEventListener('keydown', onKey);
      keyPrompt = null;
      if (ok) {
        apiKey = input.value.trim();
        try { localStorage.setItem(KEY_STORE, apiKey); } catch (e) { /* storage off */ }
        show($('#key-button'));
        resolve(apiKey);
      } else {
        reject(new Error('This server needs an API key (press "API key" at the top to enter it).'));
      }
    };
    const onSave = () => done(true);
    const onCancel = () => done(false);
    const onKey = (ev) => {
      if (ev.key === 'Enter') done(true);
      else if (ev.key === 'Escape') done(false);
    };
    $('#key-save').addEventListener('click', onSave);
    $('#key-cancel').addEventListener('click', onCancel);
    input.addEventListener('keydown', onKey);
  });
  return keyPrompt;
}

function detailText(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {  // FastAPI validation errors
    return detail.map((d) => {
      const where = (d.loc || []).filter((x) => x !== 'body' && x !== 'query').join('.');
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join('; ');
  }
  return JSON.stringify(detail);
}

/** fetch() on the API: adds the key, asks for one on 401, turns {"detail"} into an Error. */
async function api(path, { method = 'GET', body = undefined, raw = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    if (apiKey) headers['X-API-Key'] = apiKey;
    let res;
    try {
      res = await fetch(path, { method, body, headers });
    } catch (e) {
      throw new Error('Cannot reach the faceforge server. Is it still running?');
    }
    if (res.status === 401 && attempt < 3) {
      await askKey(attempt === 0 && !apiKey ? 'This server needs an API key. Ask whoever runs it.'
                                            : 'That API key was not accepted. Check it and try again.');
      continue;
    }
    if (!res.ok) {
      let msg = `The server answered ${res.status} ${res.statusText}.`;
      try {
        const j = await res.json();
        if (j && j.detail !== undefined) msg = detailText(j.detail);
      } catch (e) { /* not JSON */ }
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return raw ? res : res.json();
  }
}

// Shared lists of models and galleries (refreshed when a tab that uses them opens).
const store = { models: [], galleries: [] };

async function refreshModels() {
  const j = await api('/api/models');
  store.models = j.models || [];
  return store.models;
}

async function refreshGalleries() {
  const j = await api('/api/galleries');
  store.galleries = j.galleries || [];
  return store.galleries;
}

// ---------------------------------------------------------------------------------- webcam
const camera = {
  stream: null,
  users: new Set(),
  async attach(video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(window.isSecureContext ? 'This browser cannot use a webcam.'
        : `The webcam only works on https:// pages or on localhost; this page is ${location.origin}.`);
    }
    if (!this.stream || !this.stream.active) {
      try {
        this.stream = await navigator.mediaDevices.getUserMedia(
          { video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      } catch (e) {
        if (e.name === 'NotAllowedError') throw new Error('The browser did not allow the webcam. Allow it (the camera icon in the address bar) and try again.');
        if (e.name === 'NotFoundError') throw new Error('No webcam found.');
        if (e.name === 'NotReadableError') throw new Error('The webcam is busy (another program uses it?).');
        throw new Error(`Cannot open the webcam: ${e.message || e.name}`);
      }
    }
    video.srcObject = this.stream;
    this.users.add(video);
    await video.play().catch(() => {});
    if (video.readyState < 2 || !video.videoWidth) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 5000);
        video.addEventListener('loadeddata', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  },
  detach(video) {
    if (!this.users.has(video)) return;
    this.users.delete(video);
    video.pause();
    video.srcObject = null;
    if (!this.users.size && this.stream) {
      this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
    }
  },
};

const grabCanvas = document.createElement('canvas');

/** The video's current frame as a JPEG Blob, at most maxW pixels wide. */
function grab(video, maxW = 640, quality = 0.85) {
  const vw = video.videoWidth, vh = video.videoHeight;
  if (!vw || !vh) return Promise.resolve(null);
  const s = Math.min(1, maxW / vw);
  grabCanvas.width = Math.round(vw * s);
  grabCanvas.height = Math.round(vh * s);
  grabCanvas.getContext('2d').drawImage(video, 0, 0, grabCanvas.width, grabCanvas.height);
  return new Promise((resolve) => grabCanvas.toBlob(resolve, 'image/jpeg', quality));
}

function isImageFile(f) {
  return f && (f.type.startsWith('image/') || /\.(jpe?g|png|gif|bmp|webp|tiff?|p[bgpn]m)$/i.test(f.name));
}

// ------------------------------------------------------------------------------------ tabs
const panels = {};
let currentTab = 'train';

function switchTab(name) {
  if (name === currentTab) return;
  const leaving = currentTab;
  currentTab = name;
  for (const b of $$('.tab')) {
    const on = b.dataset.panel === name;
    b.classList.toggle('active', on);
    b.setAttribute('aria-selected', on ? 'true' : 'false');
  }
  for (const p of $$('.panel')) p.classList.toggle('active', p.id === `panel-${name}`);
  if (panels[leaving] && panels[leaving].hide) panels[leaving].hide();
  if (panels[name] && panels[name].show) panels[name].show();
}

// ----------------------------------------------------------------------------------- Train
const EMBEDDER_HELP = {
  'dlib-resnet': 'Best for telling people apart: it looks at who a face belongs to and ignores expression and lighting.',
  agegender: 'Best for attributes like age group, gender, beard or glasses: it looks at what a face is like, not whose it is.',
  'effnet-lite0': 'A general image model: use it for anything else visible on or around the face (hats, masks, headphones…).',
};

const train = {
  classes: [],
  next: 0,
  cameraFor: null,   // class open in the webcam panel
  recordTimer: null,
  busy: false,
  lastModel: null,
};

function classById(i) { return train.classes.find((c) => c.index === i); }

function addClass(name) {
  const i = train.next++;
  const cls = { index: i, photos: [] };
  const nameInput = h('input', { id: `class-name-${i}`, class: 'class-name', type: 'text', value: name,
                                 maxlength: 64, autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Class name' });
  const upload = h('input', { id: `class-upload-${i}`, class: 'visually-hidden', type: 'file', accept: 'image/*', multiple: true });
  const count = h('span', { id: `class-count-${i}`, class: 'count', text: '0' });
  const thumbs = h('div', { id: `class-thumbs-${i}`, class: 'thumbs' });
  const empty = h('p', { class: 'thumbs-empty muted small', text: 'No photos yet. Add some from the webcam or your files.' });
  const card = h('div', { id: `class-${i}`, class: 'card class-card', dataset: { index: String(i) } },
    h('div', { class: 'class-head' },
      h('span', { class: 'class-dot', style: `background:${PALETTE[i % PALETTE.length]}` }),
      nameInput,
      h('span', { class: 'class-count' }, count, ' photos'),
      h('button', { id: `class-clear-${i}`, class: 'btn ghost small', title: 'Remove all photos of this class',
                    onclick: () => clearClass(cls) }, 'Clear'),
      h('button', { id: `class-remove-${i}`, class: 'icon-btn', title: 'Remove this class', 'aria-label': 'Remove this class',
                    onclick: () => removeClass(cls) }, '×')),
    h('div', { class: 'class-body' },
      h('div', { class: 'class-camera-slot' }),
      h('div', { class: 'class-photos' },
        h('div', { class: 'class-actions' },
          h('button', { id: `class-webcam-${i}`, class: 'btn small', onclick: () => openTrainCamera(cls) },
            h('span', { class: 'ico', 'aria-hidden': 'true' }, '●'), ' Webcam'),
          upload,
          h('label', { for: `class-upload-${i}`, class: 'btn small' }, h('span', { class: 'ico', 'aria-hidden': 'true' }, '↑'), ' Upload')),
        empty, thumbs)));
  Object.assign(cls, { card, nameInput, count, thumbs, empty });
  cls.name = () => cls.nameInput.value.trim();
  upload.addEventListener('change', () => {
    addFiles(cls, Array.from(upload.files));
    upload.value = '';
  });
  // drag and drop photos onto a class
  card.addEventListener('dragover', (ev) => { ev.preventDefault(); card.classList.add('drag'); });
  card.addEventListener('dragleave', () => card.classList.remove('drag'));
  card.addEventListener('drop', (ev) => {
    ev.preventDefault();
    card.classList.remove('drag');
    addFiles(cls, Array.from(ev.dataTransfer.files || []));
  });
  train.classes.push(cls);
  $('#train-classes').append(card);
  updateClass(cls);
  return cls;
}

function addFiles(cls, files) {
  const ok = files.filter(isImageFile);
  for (const f of ok) addPhoto(cls, f, f.name);
  if (ok.length < files.length) toast(`${files.length - ok.length} file(s) skipped: not images.`);
}

function addPhoto(cls, blob, name) {
  const url = URL.createObjectURL(blob);
  const photo = { blob, url, name };
  cls.photos.push(photo);
  const img = h('img', { src: url, alt: '', loading: 'lazy' });
  const thumb = h('div', { class: 'thumb', title: 'Click to remove' }, img);
  thumb.addEventListener('click', () => {
    cls.photos.splice(cls.photos.indexOf(photo), 1);
    URL.revokeObjectURL(url);
    thumb.remove();
    updateClass(cls);
  });
  cls.thumbs.prepend(thumb);
  updateClass(cls);
}

function updateClass(cls) {
  cls.count.textContent = String(cls.photos.length);
  show(cls.empty, cls.photos.length === 0 && train.cameraFor !== cls);
}

function clearClass(cls) {
  for (const p of cls.photos) URL.revokeObjectURL(p.url);
  cls.photos = [];
  cls.thumbs.textContent = '';
  updateClass(cls);
}

function removeClass(cls) {
  if (train.cameraFor === cls) closeTrainCamera();
  clearClass(cls);
  cls.card.remove();
  train.classes.splice(train.classes.indexOf(cls), 1);
}

async function openTrainCamera(cls) {
  const panel = $('#train-camera');
  const video = $('#train-video');
  if (train.cameraFor && train.cameraFor !== cls) {
    const old = train.cameraFor;
    train.cameraFor = null;
    old.card.classList.remove('recording-target');
    updateClass(old);
  }
  train.cameraFor = cls;
  $('.class-camera-slot', cls.card).append(panel);
  cls.card.classList.add('recording-target');
  show(panel);
  updateClass(cls);
  showError($('#train-error'), null);
  try {
    await camera.attach(video);
  } catch (e) {
    closeTrainCamera();
    showError($('#train-error'), e);
  }
}

function closeTrainCamera() {
  stopRecording();
  const cls = train.cameraFor;
  train.cameraFor = null;
  camera.detach($('#train-video'));
  show($('#train-camera'), false);
  $('#panel-train').append($('#train-camera'));  // out of the card: its slot collapses
  if (cls) {
    cls.card.classList.remove('recording-target');
    updateClass(cls);
  }
}

async function captureTrain() {
  const cls = train.cameraFor;
  if (!cls) return;
  const blob = await grab($('#train-video'));
  if (blob && train.cameraFor === cls) {
    addPhoto(cls, blob, `webcam-${Date.now()}-${cls.photos.length + 1}.jpg`);
  }
}

function startRecording(ev) {
  if (ev) ev.preventDefault();
  if (train.recordTimer || !train.cameraFor) return;
  $('#train-record').classList.add('active');
  $('#train-record').textContent = 'Recording…';
  captureTrain();
  train.recordTimer = setInterval(captureTrain, 150);
}

function stopRecording() {
  if (!train.recordTimer) return;
  clearInterval(train.recordTimer);
  train.recordTimer = null;
  $('#train-record').classList.remove('active');
  $('#train-record').textContent = 'Hold to record';
}

function setProgress(p, text) {
  const bar = $('#train-progress');
  const v = Math.max(0, Math.min(100, Math.round(p * 100)));
  bar.style.width = `${v}%`;
  bar.setAttribute('aria-valuenow', String(v));
  $('#train-status').textContent = text;
}

const STEP_TEXT = {
  queued: 'Waiting for the trainer…',
  'reading photos': 'Reading the photos…',
  dataset: 'Finding the faces and learning what they look like…',
  'embedding faces': 'Finding the faces and learning what they look like…',
  embedded: 'Training the classifier…',
  fitting: 'Training the classifier…',
  validated: 'Checking accuracy and saving…',
  saving: 'Checking accuracy and saving…',
  saved: 'Saving the model…',
};

function stepText(job) {
  if (STEP_TEXT[job.message]) return STEP_TEXT[job.message];
  if (job.status === 'queued') return STEP_TEXT.queued;
  return job.message ? `${job.message[0].toUpperCase()}${job.message.slice(1)}…` : 'Working…';
}

async function startTraining() {
  if (train.busy) return;
  const err = $('#train-error');
  showError(err, null);
  show($('#train-result'), false);
  let name, used;
  try {
    name = checkName($('#train-model-name').value.trim(), 'Model name');
    used = train.classes.filter((c) => c.photos.length > 0);
    const names = new Set();
    for (const c of train.classes) {
      if (!c.photos.length) continue;
      checkName(c.name(), 'Class name');
      if (names.has(c.name().toLowerCase())) throw new Error(`Two classes are called "${c.name()}": give each class its own name.`);
      names.add(c.name().toLowerCase());
    }
    if (used.length < 2) throw new Error('Add photos to at least 2 classes (2 photos or more in each) before training.');
    const few = used.filter((c) => c.photos.length < 2).map((c) => `"${c.name()}"`);
    if (few.length) throw new Error(`Each class needs at least 2 photos; add more to ${few.join(', ')}.`);
    if (name && ATTRIBUTES.includes(name)) throw new Error(`"${name}" is the name of a built-in attribute; choose another model name.`);
  } catch (e) {
    showError(err, e);
    return;
  }
  if (train.cameraFor) closeTrainCamera();
  const fd = new FormData();
  fd.append('name', name);
  const order = [];   // photo i of the request -> (class, number)
  for (const c of used) {
    c.photos.forEach((p, k) => {
      fd.append('files', p.blob, p.name || `photo-${k + 1}.jpg`);
      fd.append('labels', c.name());
      order.push({ cls: c.name(), n: k + 1, name: p.name });
    });
  }
  fd.append('embedder', $('#train-embedder').value);
  fd.append('head', $('#train-head').value);
  fd.append('augment', $('#train-augment').checked ? 'true' : 'false');
  fd.append('replace', $('#train-replace').checked ? 'true' : 'false');

  train.busy = true;
  const button = $('#train-start');
  button.disabled = true;
  button.textContent = 'Training…';
  show($('#train-progress-box'));
  setProgress(0.01, `Uploading ${order.length} photos…`);
  try {
    let job;
    try {
      job = await api('/api/training', { method: 'POST', body: fd });
    } catch (e) {
      if (e.status === 409) {
        throw Object.assign(new Error(`A model called "${name}" already exists. Choose another name, or tick ` +
                                      '"Replace a model with the same name" under Advanced.'), { status: 409 });
      }
      throw e;
    }
    while (job.status === 'queued' || job.status === 'running') {
      setProgress(Math.max(0.03, job.progress || 0), stepText(job));
      await sleep(600);
      job = await api(`/api/jobs/${encodeURIComponent(job.id)}`);
    }
    if (job.status === 'failed') throw new Error(`Training failed: ${job.error || 'no reason given'}`);
    setProgress(1, 'Done.');
    showTrainResult(job.result || {}, order);
    refreshModels().catch(() => {});
  } catch (e) {
    showError(err, e);
    show($('#train-progress-box'), false);
  } finally {
    train.busy = false;
    button.disabled = false;
    button.textContent = 'Train model';
  }
}

function showTrainResult(result, order) {
  const report = result.report || {};
  const model = result.model || {};
  train.lastModel = model.name || null;
  $('#train-accuracy').textContent = pct(report.accuracy);
  $('#train-balanced').textContent = pct(report.balanced_accuracy);
  const classes = report.per_class ? Object.keys(report.per_class) : (model.classes || []);
  const cm = report.confusion_matrix;
  const table = $('#train-confusion');
  table.textContent = '';
  let nval = 0;
  if (Array.isArray(cm) && cm.length === classes.length) {
    table.append(h('caption', {}, 'Rows: the right class · columns: what the model said'));
    const head = h('tr', {}, h('th', { class: 'corner' }), classes.map((c) => h('th', { scope: 'col', title: c }, c)));
    table.append(h('thead', {}, head));
    const body = h('tbody');
    cm.forEach((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      body.append(h('tr', {}, h('th', { scope: 'row', title: classes[i] }, classes[i]), row.map((v, j) => {
        nval += v;
        const cell = h('td', { class: i === j ? 'diag' : (v ? 'miss' : '') }, String(v));
        cell.style.setProperty('--a', (v / total).toFixed(3));
        return cell;
      })));
    });
    table.append(body);
  }
  const note = [];
  if (nval) note.push(`Checked on ${nval} photo${nval === 1 ? '' : 's'} held back from training.`);
  if (nval && nval < 20) note.push('Add more photos for a more reliable number.');
  if (report.validation && !nval) note.push(`Validation: ${report.validation}.`);
  $('#train-result-note').textContent = note.join(' ');
  // problems, with the server's photo file names mapped back to the classes
  const probs = $('#train-problems');
  probs.textContent = '';
  const list = (result.problems || []).filter((p) => p && p.severity !== 'info');
  if (list.length) {
    const items = list.slice(0, 50).map((p) => {
      const msg = String(p.message || p.kind || JSON.stringify(p)).replace(/\b(\d{5})\.[a-z]+\b/g, (m, num) => {
        const o = order[Number(num)];
        return o ? `photo ${o.n} of "${o.cls}"` : m;
      });
      return h('li', {}, msg);
    });
    probs.append(h('details', {}, h('summary', {}, `${list.length} note${list.length === 1 ? '' : 's'} about the photos`),
                   h('ul', {}, items)));
  }
  show($('#train-result'));
  toast(`Model "${model.name}" is ready.`);
}

function initTrain() {
  addClass('Class 1');
  addClass('Class 2');
  $('#train-add-class').addEventListener('click', () => {
    const cls = addClass(`Class ${train.classes.length + 1}`);
    cls.nameInput.focus();
    cls.nameInput.select();
  });
  const emb = $('#train-embedder');
  const help = () => { $('#train-embedder-help').textContent = EMBEDDER_HELP[emb.value] || ''; };
  emb.addEventListener('change', help);
  help();
  const rec = $('#train-record');
  rec.addEventListener('pointerdown', (ev) => { rec.setPointerCapture && rec.setPointerCapture(ev.pointerId); startRecording(ev); });
  for (const t of ['pointerup', 'pointercancel', 'lostpointercapture']) rec.addEventListener(t, stopRecording);
  rec.addEventListener('keydown', (ev) => { if ((ev.key === ' ' || ev.key === 'Enter') && !ev.repeat) startRecording(ev); });
  rec.addEventListener('keyup', (ev) => { if (ev.key === ' ' || ev.key === 'Enter') stopRecording(); });
  rec.addEventListener('contextmenu', (ev) => ev.preventDefault());
  window.addEventListener('blur', stopRecording);
  $('#train-capture').addEventListener('click', captureTrain);
  $('#train-camera-close').addEventListener('click', closeTrainCamera);
  $('#train-start').addEventListener('click', startTraining);
  $('#train-try-live').addEventListener('click', () => {
    live.preselect = train.lastModel;
    switchTab('live');
  });
  $('#train-try-photo').addEventListener('click', () => {
    photo.preselect = train.lastModel;
    switchTab('photo');
  });
  panels.train = { hide: closeTrainCamera };
}

// --------------------------------------------------------------------- model / gallery pickers
function fillModelChecks(box, prefix, preselect) {
  const prev = new Set($$('input:checked', box).map((x) => x.value));
  box.textContent = '';
  const models = store.models;
  if (!models.length) {
    box.append(h('p', { class: 'muted small' }, 'No models yet — train one in the Train tab.'));
    return;
  }
  for (const m of models) {
    const input = h('input', { type: 'checkbox', value: m.name, id: `${prefix}-model-${m.name.replace(/[^A-Za-z0-9_-]/g, '_')}` });
    input.checked = prev.has(m.name) || m.name === preselect;
    const acc = m.metrics && typeof m.metrics.accuracy === 'number' ? pct(m.metrics.accuracy) : '';
    box.append(h('label', { class: 'check' }, input, h('span', {}, m.name),
                 h('span', { class: 'muted small' }, (m.classes || []).slice(0, 4).join(', ') +
                   ((m.classes || []).length > 4 ? '…' : '') + (acc ? ` · ${acc}` : ''))));
  }
}

function fillGallerySelect(select, preselect) {
  const prev = preselect !== undefined ? preselect : select.value;
  select.textContent = '';
  select.append(h('option', { value: '' }, '(none)'));
  for (const g of store.galleries) {
    select.append(h('option', { value: g.name }, `${g.name} (${g.people} ${g.people === 1 ? 'person' : 'people'})`));
  }
  select.value = store.galleries.some((g) => g.name === prev) ? prev : '';
}

function chosen(prefix) {
  const models = $$(`#${prefix}-models input:checked`).map((x) => x.value);
  const attributes = ATTRIBUTES.filter((a) => $(`#${prefix}-attr-${a}`).checked);
  const gallery = $(`#${prefix}-gallery`).value;
  return { models, attributes, gallery };
}

// Text of one face's labels: "#3 alice 0.93 · female · 31 · happy".
const FACE_KEYS = new Set(['track', 'box', 'visible', 'landmarks', 'detection_score', 'whole_image', 'score']);

function faceParts(face, withScores = true) {
  const names = Object.keys(face).filter((k) => !FACE_KEYS.has(k) && face[k] && typeof face[k] === 'object');
  const order = [...names.filter((k) => k === 'identity'),
                 ...names.filter((k) => k !== 'identity' && !ATTRIBUTES.includes(k)),
                 ...ATTRIBUTES.filter((k) => names.includes(k))];
  return order.map((k) => {
    const p = face[k];
    if (k === 'age' && typeof p.value === 'number') return `age ${Math.round(p.value)}`;
    if (typeof p.value === 'number' && p.label === undefined) return `${k} ${Math.round(p.value * 10) / 10}`;
    const score = withScores && !ATTRIBUTES.includes(k) && typeof p.score === 'number' ? ` ${p.score.toFixed(2)}` : '';
    return `${p.label}${score}`;
  });
}

function drawBox(ctx, box, text, color, scale, dim) {
  const [x1, y1, x2, y2] = box;
  const lw = Math.max(1, 2.5 * scale);
  ctx.save();
  ctx.globalAlpha = dim ? 0.45 : 1;
  ctx.strokeStyle = color;
  ctx.lineWidth = lw;
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x1, y1, x2 - x1, y2 - y1, 6 * scale); else ctx.rect(x1, y1, x2 - x1, y2 - y1);
  ctx.stroke();
  if (text) {
    let fs = Math.max(6, Math.round(15 * scale));
    const pad = 5 * scale;
    const font = (size) => `600 ${size}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
    ctx.font = font(fs);
    let tw = ctx.measureText(text).width;
    if (tw + 2 * pad > ctx.canvas.width) {  // too wide for the picture: smaller letters
      fs = Math.max(6, Math.floor(fs * (ctx.canvas.width - 2 * pad) / tw));
      ctx.font = font(fs);
      tw = ctx.measureText(text).width;
    }
    const bh = fs + 2 * pad;
    let ty = y1 - bh - lw / 2;
    if (ty < 0) ty = y2 + lw / 2;
    const tx = Math.max(0, Math.min(x1 - lw / 2, ctx.canvas.width - tw - 2 * pad));
    ctx.fillStyle = color;
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(tx, ty, tw + 2 * pad, bh, 5 * scale); else ctx.rect(tx, ty, tw + 2 * pad, bh);
    ctx.fill();
    ctx.fillStyle = '#fff';
    ctx.textBaseline = 'middle';
    ctx.fillText(text, tx + pad, ty + bh / 2 + 1);
  }
  ctx.restore();
}

// ------------------------------------------------------------------------------------ Live
const live = {
  ws: null,
  running: false,
  preselect: null,
  sentAt: 0,
  times: [],
  frameSize: [0, 0],
  lastFaces: [],
};

async function liveShow() {
  showError($('#live-error'), null);
  try {
    await Promise.all([refreshModels(), refreshGalleries()]);
  } catch (e) {
    showError($('#live-error'), e);
  }
  fillModelChecks($('#live-models'), 'live', live.preselect);
  fillGallerySelect($('#live-gallery'));
  if (live.preselect) {
    // a model just trained: show it alone
    for (const a of ATTRIBUTES) $(`#live-attr-${a}`).checked = false;
    live.preselect = null;
  }
}

function liveStatus(text) { $('#live-status').textContent = text; }

async function startLive() {
  if (live.running) return;
  const err = $('#live-error');
  showError(err, null);
  const { models, attributes, gallery } = chosen('live');
  if (!models.length && !attributes.length && !gallery) {
    showError(err, new Error('Choose at least one model, built-in attribute or gallery to show.'));
    return;
  }
  $('#live-start').disabled = true;
  try {
    // a cheap authenticated call first: asks for the API key if needed (a WebSocket cannot tell why it was refused)
    await api('/api/galleries');
    liveStatus('starting the webcam…');
    await camera.attach($('#live-video'));
  } catch (e) {
    showError(err, e);
    $('#live-start').disabled = false;
    liveStatus('stopped');
    return;
  }
  show($('#live-placeholder'), false);
  fitStage();
  live.running = true;
  live.times = [];
  live.lastFaces = [];
  $('#live-labels').textContent = '';
  $('#live-stop').disabled = false;
  $('#live-stage').classList.toggle('mirror', $('#live-mirror').checked);
  const q = new URLSearchParams({ models: models.join(','), attributes: attributes.join(','), gallery });
  if (apiKey) q.set('key', apiKey);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  liveStatus('connecting… (loading the models can take a few seconds)');
  const ws = new WebSocket(`${proto}//${location.host}/api/live?${q}`);
  ws.binaryType = 'arraybuffer';
  live.ws = ws;
  let opened = false;
  ws.onopen = () => { opened = true; liveStatus('running'); sendFrame(ws); };
  ws.onmessage = (ev) => {
    if (ws !== live.ws) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.error) {
      showError(err, new Error(msg.error));
      if (ws.readyState !== WebSocket.OPEN) return;
    } else {
      onLiveResult(msg);
    }
    sendFrame(ws);
  };
  ws.onclose = (ev) => {
    if (ws !== live.ws) return;
    if (!opened && !$('#live-error').textContent) {
      showError(err, new Error('Could not connect to the live service (is the server running, and is the API key right?).'));
    } else if (opened && live.running && ev.code !== 1000 && !$('#live-error').textContent) {
      showError(err, new Error(`The live connection closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''}).`));
    }
    stopLive();
  };
}

async function sendFrame(ws) {
  if (!live.running || ws !== live.ws || ws.readyState !== WebSocket.OPEN) return;
  const video = $('#live-video');
  let blob = null;
  for (let tries = 0; !blob && tries < 100 && live.running; tries++) {
    blob = await grab(video, 640, 0.8);
    if (!blob) await sleep(50);
  }
  if (!blob || !live.running || ws !== live.ws || ws.readyState !== WebSocket.OPEN) return;
  live.frameSize = [grabCanvas.width, grabCanvas.height];
  live.sentAt = performance.now();
  ws.send(blob);
}

function onLiveResult(msg) {
  const now = performance.now();
  live.times.push(now);
  while (live.times.length && now - live.times[0] > 2000) live.times.shift();
  const fps = live.times.length > 1 ? (live.times.length - 1) / ((now - live.times[0]) / 1000) : 0;
  $('#live-fps').textContent = fps ? fps.toFixed(1) : '–';
  $('#live-latency').textContent = String(Math.round(now - live.sentAt));
  $('#live-server-ms').textContent = typeof msg.ms === 'number' ? String(Math.round(msg.ms)) : '–';
  live.lastFaces = msg.faces || [];
  drawLive(msg.width || live.frameSize[0], msg.height || live.frameSize[1]);
  const lines = live.lastFaces.map((f) => {
    const parts = faceParts(f);
    return `#${f.track} ${parts.join(' · ')}${f.visible === false ? ' (lost)' : ''}`.trim();
  });
  $('#live-labels').textContent = lines.length ? lines.join('\n') : 'No face in view.';
}

/** Size the video (and so its overlay) to fill the stage, keeping the aspect ratio. */
function fitStage() {
  const video = $('#live-video');
  const inner = $('#live-stage .stage-inner');
  const vw = video.videoWidth, vh = video.videoHeight;
  if (!vw || !vh) { inner.style.width = ''; inner.style.height = ''; return; }
  const stage = $('#live-stage');
  const maxW = stage.clientWidth;
  const maxH = Math.max(240, Math.min(window.innerHeight * 0.68, 720));
  const s = Math.min(maxW / vw, maxH / vh);
  inner.style.width = `${Math.floor(vw * s)}px`;
  inner.style.height = `${Math.floor(vh * s)}px`;
}

function drawLive(w, h2) {
  // the overlay is drawn at screen resolution (crisp labels); boxes are in frame pixels (w x h2)
  const canvas = $('#live-overlay');
  const dpr = window.devicePixelRatio || 1;
  const cw = Math.max(1, Math.round((canvas.clientWidth || w) * dpr));
  const ch = Math.max(1, Math.round((canvas.clientHeight || h2) * dpr));
  if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, cw, ch);
  if (!w || !h2) return;
  const sx = cw / w, sy = ch / h2;
  const mirror = $('#live-stage').classList.contains('mirror');
  for (const f of live.lastFaces) {
    let [x1, y1, x2, y2] = f.box;
    if (mirror) [x1, x2] = [w - x2, w - x1];
    const color = PALETTE[(f.track || 0) % PALETTE.length];
    drawBox(ctx, [x1 * sx, y1 * sy, x2 * sx, y2 * sy], `#${f.track} ${faceParts(f, false).join(' · ')}`, color, dpr,
            f.visible === false);
  }
}

function stopLive() {
  const ws = live.ws;
  live.ws = null;
  live.running = false;
  if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close(1000);
  camera.detach($('#live-video'));
  fitStage();
  const canvas = $('#live-overlay');
  canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  show($('#live-placeholder'));
  $('#live-start').disabled = false;
  $('#live-stop').disabled = true;
  $('#live-fps').textContent = '–';
  liveStatus('stopped');
}

function initLive() {
  $('#live-start').addEventListener('click', startLive);
  $('#live-stop').addEventListener('click', stopLive);
  $('#live-video').addEventListener('loadedmetadata', fitStage);
  $('#live-video').addEventListener('resize', fitStage);
  window.addEventListener('resize', () => { if (live.running) fitStage(); });
  $('#live-mirror').addEventListener('change', () => {
    $('#live-stage').classList.toggle('mirror', $('#live-mirror').checked);
    if (live.running) drawLive(live.frameSize[0], live.frameSize[1]);
  });
  panels.live = { show: liveShow, hide: stopLive };
}

// ----------------------------------------------------------------------------------- Photo
const photo = { preselect: null, last: null };

async function photoShow() {
  try {
    await Promise.all([refreshModels(), refreshGalleries()]);
  } catch (e) {
    showError($('#photo-error'), e);
  }
  fillModelChecks($('#photo-models'), 'photo', photo.preselect);
  fillGallerySelect($('#photo-gallery'));
  if (photo.preselect) {
    for (const a of ATTRIBUTES) $(`#photo-attr-${a}`).checked = false;
    photo.preselect = null;
  }
}

async function analysePhoto(source) {
  const err = $('#photo-error');
  showError(err, null);
  const { models, attributes, gallery } = chosen('photo');
  if (!models.length && !attributes.length && !gallery) {
    showError(err, new Error('Choose at least one model, built-in attribute or gallery to show.'));
    return;
  }
  photo.last = source;
  $('#photo-again').disabled = false;
  const fd = new FormData();
  if (source.file) fd.append('file', source.file, source.file.name);
  else fd.append('url', source.url);
  fd.append('attributes', attributes.join(','));
  fd.append('models', models.join(','));
  fd.append('gallery', gallery);
  $('#photo-status').textContent = 'Analysing…';
  try {
    const res = await api('/api/analyze', { method: 'POST', body: fd });
    // the image to draw on: the uploaded file, or the URL (if the browser may load it)
    const img = new Image();
    const src = source.file ? URL.createObjectURL(source.file) : source.url;
    const loaded = await new Promise((resolve) => {
      img.onload = () => resolve(true);
      img.onerror = () => resolve(false);
      img.src = src;
    });
    renderPhoto(res, loaded ? img : null);
    if (source.file) URL.revokeObjectURL(src);
    const n = res.faces.length;
    $('#photo-status').textContent = n ? `${n} face${n === 1 ? '' : 's'} found.` : 'No face found in this photo.';
  } catch (e) {
    $('#photo-status').textContent = '';
    showError(err, e);
  }
}

function renderPhoto(res, img) {
  show($('#photo-result'));
  const canvas = $('#photo-canvas');
  canvas.width = res.width;
  canvas.height = res.height;
  const ctx = canvas.getContext('2d');
  if (img) ctx.drawImage(img, 0, 0, res.width, res.height);
  else { ctx.fillStyle = '#e5e7eb'; ctx.fillRect(0, 0, res.width, res.height); }
  const scale = res.width / (canvas.clientWidth || res.width);  // canvas pixels per screen pixel
  res.faces.forEach((f, i) => drawBox(ctx, f.box, String(i + 1), PALETTE[i % PALETTE.length], scale, false));
  const table = $('#photo-table');
  table.textContent = '';
  if (res.faces.length) {
    const first = res.faces[0];
    const cols = Object.keys(first).filter((k) => !FACE_KEYS.has(k) && first[k] && typeof first[k] === 'object');
    cols.sort((a, b) => (a === 'identity' ? -1 : b === 'identity' ? 1 : 0));
    table.append(h('thead', {}, h('tr', {}, h('th', {}, 'Face'), cols.map((c) => h('th', {}, c)))));
    const body = h('tbody');
    res.faces.forEach((f, i) => {
      const crop = h('canvas', { class: 'face-crop', width: 56, height: 56 });
      if (img) {
        const [x1, y1, x2, y2] = f.box;
        const s = Math.max(x2 - x1, y2 - y1) * 1.15;
        const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
        const sx = img.naturalWidth / res.width, sy = img.naturalHeight / res.height;
        crop.getContext('2d').drawImage(img, (cx - s / 2) * sx, (cy - s / 2) * sy, s * sx, s * sy, 0, 0, 56, 56);
      }
      body.append(h('tr', {},
        h('td', { class: 'face-cell' }, h('span', { class: 'face-num', style: `background:${PALETTE[i % PALETTE.length]}` }, String(i + 1)), crop),
        cols.map((c) => {
          const p = f[c] || {};
          let main = p.label;
          if (c === 'age' && typeof p.value === 'number') main = `${Math.round(p.value)} years`;
          const tops = (p.top_k || []).slice(1, 3).map((t) =>
            `${t.label} ${typeof t.score === 'number' ? t.score.toFixed(2) : ''}`).join(', ');
          return h('td', {}, h('div', { class: 'cell-main' }, main === undefined ? '–' : String(main),
                                typeof p.score === 'number' && c !== 'age' ? h('span', { class: 'score' }, p.score.toFixed(2)) : null),
                   tops ? h('div', { class: 'muted small' }, `then ${tops}`) : null);
        })));
    });
    table.append(body);
  }
  show($('#photo-result'));
}

function initPhoto() {
  const file = $('#photo-file');
  file.addEventListener('change', () => {
    if (file.files[0]) analysePhoto({ file: file.files[0] });
    file.value = '';
  });
  $('#photo-url-go').addEventListener('click', () => {
    const url = $('#photo-url').value.trim();
    if (!/^https?:\/\//i.test(url)) {
      showError($('#photo-error'), new Error('Give a web address starting with http:// or https://.'));
      return;
    }
    analysePhoto({ url });
  });
  $('#photo-url').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') $('#photo-url-go').click(); });
  $('#photo-again').addEventListener('click', () => { if (photo.last) analysePhoto(photo.last); });
  const drop = $('#photo-drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('drag'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('drag'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('drag');
    const f = Array.from(ev.dataTransfer.files || []).find(isImageFile);
    if (f) analysePhoto({ file: f });
  });
  panels.photo = { show: photoShow };
}

// ---------------------------------------------------------------------------------- People
const people = { pending: [], loadTimer: null, shownGallery: null };

function galleryName() { return $('#people-gallery').value.trim(); }

async function peopleShow() {
  try {
    await refreshGalleries();
    const dl = $('#people-galleries');
    dl.textContent = '';
    for (const g of store.galleries) dl.append(h('option', { value: g.name }));
    if (!people.shownGallery && store.galleries.length && !store.galleries.some((g) => g.name === galleryName())) {
      $('#people-gallery').value = store.galleries[0].name;
    }
  } catch (e) {
    showError($('#people-error'), e);
  }
  await loadPeople();
}

async function loadPeople() {
  const g = galleryName();
  const table = $('#people-list');
  const empty = $('#people-empty');
  people.shownGallery = g;
  $('#people-list-title').textContent = g ? `People in "${g}"` : 'People';
  table.textContent = '';
  if (!g) { empty.textContent = 'Type a gallery name.'; return; }
  if (!NAME_RE.test(g)) { empty.textContent = 'Gallery names use letters, digits, spaces, "_", "." or "-".'; return; }
  let list;
  try {
    list = (await api(`/api/galleries/${encodeURIComponent(g)}/people`)).people || [];
  } catch (e) {
    if (e.status === 404) { empty.textContent = `No gallery "${g}" yet: enrol someone to create it.`; return; }
    empty.textContent = '';
    showError($('#people-error'), e);
    return;
  }
  if (people.shownGallery !== g) return;
  empty.textContent = list.length ? '' : 'Nobody here yet.';
  if (!list.length) return;
  table.append(h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Faces'), h('th', {}, 'Added'), h('th', {}, ''))));
  const body = h('tbody');
  for (const p of list) {
    const del = h('button', { class: 'btn danger ghost small person-delete', dataset: { person: p.name } }, 'Delete');
    confirmClick(del, async () => {
      try {
        await api(`/api/galleries/${encodeURIComponent(g)}/people/${encodeURIComponent(p.name)}`, { method: 'DELETE' });
        toast(`Deleted ${p.name}.`);
      } catch (e) { showError($('#people-error'), e); }
      loadPeople();
    });
    body.append(h('tr', { dataset: { person: p.name } },
      h('td', { class: 'person-name' }, p.name),
      h('td', { class: 'person-faces' }, String(p.faces)),
      h('td', { class: 'muted small' }, p.created ? new Date(p.created * 1000).toLocaleDateString() : ''),
      h('td', { class: 'right' }, del)));
  }
  table.append(body);
}

function addPending(blob, name) {
  const url = URL.createObjectURL(blob);
  const item = { blob, name, url };
  people.pending.push(item);
  const thumb = h('div', { class: 'thumb', title: 'Click to remove' }, h('img', { src: url, alt: '' }));
  thumb.addEventListener('click', () => {
    people.pending.splice(people.pending.indexOf(item), 1);
    URL.revokeObjectURL(url);
    thumb.remove();
    updatePending();
  });
  $('#people-pending').append(thumb);
  updatePending();
}

function updatePending() { $('#people-pending-count').textContent = String(people.pending.length); }

function clearPending() {
  for (const p of people.pending) URL.revokeObjectURL(p.url);
  people.pending = [];
  $('#people-pending').textContent = '';
  updatePending();
}

async function enrol() {
  const err = $('#people-error');
  showError(err, null);
  show($('#people-report'), false);
  let g, person;
  try {
    g = checkName(galleryName(), 'Gallery name');
    person = checkName($('#people-person').value.trim(), 'Name');
    if (!people.pending.length) throw new Error('Add a few photos of the person first (upload or webcam).');
  } catch (e) {
    showError(err, e);
    return;
  }
  const fd = new FormData();
  for (const p of people.pending) fd.append('files', p.blob, p.name);
  const button = $('#people-enrol');
  button.disabled = true;
  button.textContent = 'Enrolling…';
  try {
    const rep = await api(`/api/galleries/${encodeURIComponent(g)}/people/${encodeURIComponent(person)}/photos`,
                          { method: 'POST', body: fd });
    const box = $('#people-report');
    box.textContent = '';
    const added = (rep.added || []).length;
    box.append(h('p', {}, h('b', {}, rep.person), ` — ${added} photo${added === 1 ? '' : 's'} added, ` +
                                                   `${rep.faces} face${rep.faces === 1 ? '' : 's'} stored.`));
    if ((rep.duplicates || []).length) box.append(h('p', { class: 'muted small' }, `${rep.duplicates.length} already enrolled (skipped).`));
    if ((rep.problems || []).length) {
      box.append(h('ul', { class: 'problems-list' }, rep.problems.map((p) => h('li', {}, `${p.photo}: ${p.message}`))));
    }
    show(box);
    clearPending();
    await refreshGalleries().catch(() => {});
    const dl = $('#people-galleries');
    dl.textContent = '';
    for (const x of store.galleries) dl.append(h('option', { value: x.name }));
  } catch (e) {
    showError(err, e);
  } finally {
    button.disabled = false;
    button.textContent = 'Enrol';
  }
  await loadPeople();
}

async function openPeopleCamera() {
  showError($('#people-error'), null);
  show($('#people-camera'));
  $('#people-camera-start').disabled = true;
  try {
    await camera.attach($('#people-video'));
  } catch (e) {
    closePeopleCamera();
    showError($('#people-error'), e);
  }
}

function closePeopleCamera() {
  camera.detach($('#people-video'));
  show($('#people-camera'), false);
  $('#people-camera-start').disabled = false;
}

function initPeople() {
  const gal = $('#people-gallery');
  gal.addEventListener('input', () => {
    clearTimeout(people.loadTimer);
    people.loadTimer = setTimeout(loadPeople, 350);
  });
  gal.addEventListener('change', () => { clearTimeout(people.loadTimer); loadPeople(); });
  const files = $('#people-files');
  files.addEventListener('change', () => {
    const list = Array.from(files.files);
    const ok = list.filter(isImageFile);
    for (const f of ok) addPending(f, f.name);
    if (ok.length < list.length) toast(`${list.length - ok.length} file(s) skipped: not images.`);
    files.value = '';
  });
  $('#people-camera-start').addEventListener('click', openPeopleCamera);
  $('#people-camera-stop').addEventListener('click', closePeopleCamera);
  $('#people-capture').addEventListener('click', async () => {
    const blob = await grab($('#people-video'));
    if (blob) addPending(blob, `webcam-${Date.now()}.jpg`);
  });
  $('#people-clear').addEventListener('click', clearPending);
  $('#people-enrol').addEventListener('click', enrol);
  $('#people-person').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') enrol(); });
  confirmClick($('#people-delete-gallery'), async () => {
    const g = galleryName();
    if (!g) return;
    try {
      await api(`/api/galleries/${encodeURIComponent(g)}`, { method: 'DELETE' });
      toast(`Deleted the gallery "${g}".`);
    } catch (e) { showError($('#people-error'), e); }
    await refreshGalleries().catch(() => {});
    loadPeople();
  });
  panels.people = { show: peopleShow, hide: closePeopleCamera };
}

// ---------------------------------------------------------------------------------- Models
async function modelsShow() {
  const err = $('#models-error');
  showError(err, null);
  try {
    await refreshModels();
  } catch (e) {
    showError(err, e);
    return;
  }
  const table = $('#models-list');
  table.textContent = '';
  $('#models-empty').textContent = store.models.length ? '' : 'No models yet. Train one in the Train tab, or upload a .ffm file below.';
  if (!store.models.length) return;
  table.append(h('thead', {}, h('tr', {}, ['Name', 'Task', 'Classes', 'Accuracy', 'Looks at', 'Size', 'Created', ''].map((t) => h('th', {}, t)))));
  const body = h('tbody');
  for (const m of store.models) {
    const dl = h('button', { class: 'btn small model-download', dataset: { model: m.name } }, 'Download');
    dl.addEventListener('click', () => downloadModel(m.name));
    const del = h('button', { class: 'btn danger ghost small model-delete', dataset: { model: m.name } }, 'Delete');
    confirmClick(del, async () => {
      try {
        await api(`/api/models/${encodeURIComponent(m.name)}`, { method: 'DELETE' });
        toast(`Deleted ${m.name}.`);
      } catch (e) { showError(err, e); }
      modelsShow();
    });
    const metrics = m.metrics || {};
    const acc = typeof metrics.accuracy === 'number' ? pct(metrics.accuracy) : (typeof metrics.mae === 'number' ? `MAE ${metrics.mae.toFixed(2)}` : '–');
    const bal = typeof metrics.balanced_accuracy === 'number' ? ` (balanced ${pct(metrics.balanced_accuracy)})` : '';
    const classes = m.classes || [];
    body.append(h('tr', { dataset: { model: m.name } },
      h('td', { class: 'strong' }, m.name),
      h('td', {}, m.task || ''),
      h('td', { title: classes.join(', ') }, classes.slice(0, 6).join(', ') + (classes.length > 6 ? ` +${classes.length - 6}` : '')),
      h('td', {}, acc, h('span', { class: 'muted small' }, bal)),
      h('td', { class: 'muted' }, m.embedder || ''),
      h('td', { class: 'muted' }, m.size ? `${(m.size / 1024).toFixed(0)} KB` : ''),
      h('td', { class: 'muted small' }, m.created ? new Date(m.created * 1000).toLocaleString() : ''),
      h('td', { class: 'right nowrap' }, dl, ' ', del)));
  }
  table.append(body);
}

async function downloadModel(name) {
  try {
    const res = await api(`/api/models/${encodeURIComponent(name)}/file`, { raw: true });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.ffm` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    showError($('#models-error'), e);
  }
}

async function uploadModel() {
  const status = $('#models-status');
  const err = $('#models-error');
  showError(err, null);
  const file = $('#models-upload-file').files[0];
  try {
    if (!file) throw new Error('Choose a .ffm model file first.');
    const name = checkName($('#models-upload-name').value.trim(), 'Model name');
    const fd = new FormData();
    fd.append('file', file, file.name);
    fd.append('name', name);
    fd.append('replace', $('#models-upload-replace').checked ? 'true' : 'false');
    status.textContent = 'Uploading…';
    const info = await api('/api/models', { method: 'POST', body: fd });
    status.textContent = `Added "${info.name}" (${(info.classes || []).length} classes).`;
    $('#models-upload-file').value = '';
    $('#models-upload-filename').textContent = 'no file chosen';
    $('#models-upload-name').value = '';
    await modelsShow();
  } catch (e) {
    status.textContent = '';
    showError(err, e.status === 409 ? new Error(`${e.message} (tick "Replace if it exists" to overwrite it.)`) : e);
  }
}

function initModels() {
  $('#models-upload').addEventListener('click', uploadModel);
  $('#models-upload-file').addEventListener('change', () => {
    const f = $('#models-upload-file').files[0];
    $('#models-upload-filename').textContent = f ? f.name : 'no file chosen';
    const name = $('#models-upload-name');
    if (f && !name.value.trim()) name.value = f.name.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9 _.-]/g, '-').slice(0, 64);
  });
  panels.models = { show: modelsShow };
}

// ------------------------------------------------------------------------------------ start
async function init() {
  for (const b of $$('.tab')) b.addEventListener('click', () => switchTab(b.dataset.panel));
  $('#key-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('#key-button').addEventListener('click', () => askKey('Enter the API key of this server.').catch(() => {}));
  initTrain();
  initLive();
  initPhoto();
  initPeople();
  initModels();
  window.addEventListener('beforeunload', () => { stopLive(); });
  try {
    const res = await fetch('/api/health');
    const j = await res.json();
    $('#server-version').textContent = j.version ? `v${j.version}` : '';
    if (j.auth) show($('#key-button'));
  } catch (e) {
    toast('Cannot reach the faceforge server.');
  }
  document.body.dataset.ready = '1';
}

init();
