/* faceforge web page: The Train tab: classes of photos (webcam or files), a training job, its result. */

import { $, ATTRIBUTES, checkName, h, PALETTE, pct, show, showError, sleep, toast } from './util.js';
import { api, refreshModels } from './api.js';
import { camera, grab, isImageFile } from './camera.js';
import { panels, switchTab } from './tabs.js';
import { live } from './live.js';
import { photo } from './photo.js';

// ----------------------------------------------------------------------------------- Train
const EMBEDDER_HELP = {
  auto: 'faceforge tries every feature set it has (and the two best together) on your photos, checks each by ' +
        'cross-validation and keeps the best. You will see the leaderboard after training.',
  'dlib-resnet': 'Best for telling people apart: it looks at who a face belongs to and ignores expression and lighting.',
  agegender: 'Best for attributes like age group, gender, beard or glasses: it looks at what a face is like, not whose it is.',
  expression: 'Best for expressions (smiling, surprised, frowning, mouth open): the features of faceforge\'s emotion network.',
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
  const others = h('input', { id: `class-others-${i}`, type: 'checkbox', 'aria-label': 'These are other people' });
  const thumbs = h('div', { id: `class-thumbs-${i}`, class: 'thumbs' });
  const empty = h('p', { class: 'thumbs-empty muted small', text: 'No photos yet. Add some from the webcam or your files.' });
  const card = h('div', { id: `class-${i}`, class: 'card class-card', dataset: { index: String(i) } },
    h('div', { class: 'class-head' },
      h('span', { class: 'class-dot', style: `background:${PALETTE[i % PALETTE.length]}` }),
      nameInput,
      h('span', { class: 'class-count' }, count, ' photos'),
      h('label', { class: 'small muted', title: 'Tick for a class of anyone else\'s faces (a "not me" class): ' +
                   'a face is one of the other classes only when it is close enough to their photos' },
        others, ' other people'),
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
  Object.assign(cls, { card, nameInput, count, thumbs, empty, others });
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
  if ($('#train-head').value) fd.append('head', $('#train-head').value);
  const negatives = used.filter((c) => c.others.checked).map((c) => c.name());
  if (negatives.length) fd.append('negatives', negatives.join(','));
  fd.append('augment', $('#train-augment').checked ? 'true' : 'false');
  if ($('#train-accurate').checked) fd.append('quality', 'accurate');
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
    if (job.status === 'cancelled') throw new Error('Training was cancelled.');
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
  const hl = report.headline || null;   // what users get (after the unknown check)
  const mean = (x) => (x && typeof x === 'object' ? x.mean : x);
  $('#train-accuracy').textContent = pct(hl ? mean(hl.accuracy) : report.accuracy);
  $('#train-balanced').textContent = pct(hl ? hl.mean : report.balanced_accuracy);
  $('#train-headline').textContent = hl && hl.text ? `What you get: ${hl.text}.` : '';
  showUnknown(report);
  showLeaderboard(report.auto);
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
  const v = report.validation;
  if (v && typeof v === 'object') {
    const pct = (x) => `${Math.round(100 * x)}%`;
    if (typeof v.mean === 'number' && Array.isArray(v.ci95) && v.metric !== 'MAE') {
      const what = hl && hl.unknown_check ? 'Without the unknown check (top-1), checked by' : 'Checked by';
      note.push(`${what} ${v.description}: balanced accuracy ${pct(v.mean)} (95% interval ` +
                `${pct(v.ci95[0])}–${pct(v.ci95[1])}) over ${v.n} photos.`);
    } else if (v.description) {
      note.push(`Validation: ${v.description}.`);
    }
    if (v.warning) note.push(v.warning);
  } else if (nval) {
    note.push(`Checked on ${nval} photo${nval === 1 ? '' : 's'} held back from training.`);
    if (nval < 20) note.push('Add more photos for a more reliable number.');
  } else if (v) {
    note.push(`Validation: ${v}.`);
  }
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

function showUnknown(report) {
  const u = report.unknown;
  const hl = report.headline || {};
  const el = $('#train-unknown');
  if (!u) { el.textContent = ''; return; }
  const pct1 = (x) => `${(100 * x).toFixed(1)}%`;
  const parts = [`Rule: ${u.rule || (u.disabled ? 'attributes' : 'people')}. ${u.why || u.disabled || ''}`];
  if (!u.disabled && typeof u.threshold === 'number') {
    parts.push(`Unknown check: faces less like any class than ${u.threshold.toFixed(3)} are called ` +
               `"${hl.rejected_label || 'unknown'}", for a ${pct1(u.target_far)} false-accept rate ` +
               `(measured on your photos: ${pct1(u.far)} of strangers accepted, ${pct1(u.frr)} of known faces rejected).`);
    if (typeof hl.known_rejected === 'number') {
      parts.push(`In validation ${pct1(hl.known_rejected)} of ${hl.known_predictions} predictions of known faces ` +
                 `came out "${hl.rejected_label || 'unknown'}"; they count as errors above.`);
    }
  }
  el.textContent = parts.join(' ');
}

function showLeaderboard(auto) {
  const box = $('#train-auto');
  const table = $('#train-leaderboard');
  table.textContent = '';
  if (!auto || !Array.isArray(auto.leaderboard) || !auto.leaderboard.length) { show(box, false); return; }
  const chosen = auto.chosen || {};
  const lower = auto.metric === 'mae';
  const fmt = (x) => (lower ? x.toFixed(2) : `${(100 * x).toFixed(1)}%`);
  $('#train-auto-summary').textContent = `How the features were chosen: ${chosen.embedder} with ${chosen.head} ` +
    `(${auto.leaderboard.length} tried in ${Math.round(auto.seconds || 0)} s)`;
  table.append(h('caption', {}, auto.how || ''));
  table.append(h('thead', {}, h('tr', {}, ['features', 'classifier', lower ? 'MAE' : 'balanced accuracy',
                                          '95% interval', 'photos'].map((c) => h('th', { scope: 'col' }, c)))));
  const body = h('tbody');
  for (const r of auto.leaderboard.slice(0, 12)) {
    const isChosen = r.embedder === chosen.embedder && r.head === chosen.head;
    body.append(h('tr', { class: isChosen ? 'chosen' : '' },
      h('td', {}, r.embedder), h('td', {}, r.head), h('td', {}, fmt(r.score)),
      h('td', {}, Array.isArray(r.ci95) ? `${fmt(r.ci95[0])}–${fmt(r.ci95[1])}` : ''), h('td', {}, String(r.photos ?? ''))));
  }
  table.append(body);
  show(box);
}

export function initTrain() {
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
