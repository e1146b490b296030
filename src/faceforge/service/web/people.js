/* faceforge web page: The People tab: galleries, enrolling photos of a person, the people list. */

import { $, checkName, confirmClick, h, NAME_RE, show, showError, toast } from './util.js';
import { api, refreshGalleries, store } from './api.js';
import { camera, grab, isImageFile } from './camera.js';
import { panels } from './tabs.js';
import { accurateCheck } from './faces.js';

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
  syncAccurate();
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
  // a new gallery is created with the preset; an existing one keeps its own (a mismatch is refused)
  if ($('#people-accurate').checked) fd.append('quality', 'accurate');
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

// ------------------------------------------------------------------ Check a photo (identify)
/** "threshold 0.46 · expected false-accept rate 1%": what every answer is decided with. */
export function decisionText(threshold, far, quality) {
  if (threshold === null || threshold === undefined) return '';
  const rate = far === null || far === undefined ? 'not calibrated' : `${+(100 * far).toPrecision(2)}%`;
  return `threshold ${Number(threshold).toFixed(2)} · expected false-accept rate ${rate}` +
         (quality ? ` · ${quality}` : '');
}

/** Tick the Accurate boxes when the chosen gallery was enrolled accurate (it identifies so anyway). */
function syncAccurate() {
  const g = store.galleries.find((x) => x.name === galleryName());
  const acc = !!g && g.quality === 'accurate';
  for (const id of ['#people-accurate', '#people-check-accurate']) {
    const box = $(id);
    if (box && g) box.checked = acc;
  }
}

function buildCheckCard() {
  const layout = $('#panel-people .people-layout');
  if (!layout || $('#people-check')) return;
  const far = h('select', { id: 'people-check-far', title: 'Share of strangers that may be taken for someone enrolled' },
    h('option', { value: '0.001' }, '0.1% (strict)'), h('option', { value: '0.01', selected: true }, '1% (default)'),
    h('option', { value: '0.05' }, '5% (lenient)'));
  const input = h('input', { id: 'people-check-file', class: 'visually-hidden', type: 'file', accept: 'image/*' });
  layout.append(h('div', { class: 'card', id: 'people-check' },
    h('h2', {}, 'Check a photo'),
    h('p', { class: 'muted small' }, 'Who is in a photo? Faces farther than the threshold from everyone enrolled are "unknown".'),
    h('div', { class: 'row gap wrap' },
      h('label', { class: 'field' }, h('span', {}, 'False-accept rate'), far),
      accurateCheck('people-check-accurate', 'Identify with accurate embeddings: only for a gallery enrolled ' +
                                             'accurate (a gallery identifies with the preset it was enrolled with).'),
      input, h('label', { for: 'people-check-file', class: 'btn' }, 'Choose a photo')),
    h('div', { id: 'people-check-error', class: 'error', role: 'alert', hidden: true }),
    h('div', { id: 'people-check-result', class: 'report', hidden: true })));
  input.addEventListener('change', () => {
    const f = input.files[0];
    input.value = '';
    if (f) checkPhoto(f);
  });
}

async function checkPhoto(file) {
  const err = $('#people-check-error');
  const box = $('#people-check-result');
  showError(err, null);
  let g;
  try { g = checkName(galleryName(), 'Gallery name'); } catch (e) { showError(err, e); return; }
  const fd = new FormData();
  fd.append('file', file, file.name);
  fd.append('target_far', $('#people-check-far').value);
  if ($('#people-check-accurate').checked) fd.append('quality', 'accurate');
  try {
    const res = await api(`/api/galleries/${encodeURIComponent(g)}/identify`, { method: 'POST', body: fd });
    box.textContent = '';
    const faces = res.faces || [];
    box.append(h('p', { class: 'muted small people-check-decision' }, decisionText(res.threshold, res.far, res.quality)));
    if (!faces.length) box.append(h('p', {}, 'No face found in this photo.'));
    box.append(h('ul', { class: 'people-check-faces' }, faces.map((f) => h('li', {},
      h('b', {}, f.label), f.distance === null || f.distance === undefined ? '' : ` — distance ${f.distance.toFixed(2)}`,
      h('span', { class: 'muted small' }, ` (${decisionText(f.threshold, f.far)})`)))));
    show(box);
  } catch (e) {
    show(box, false);
    showError(err, e);
  }
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

export function initPeople() {
  buildCheckCard();
  $('#people-enrol').before(accurateCheck('people-accurate', 'Create the gallery with accurate embeddings (each face ' +
                                          'and its mirror image averaged; ~2x the embedding time). A gallery keeps ' +
                                          'the preset it was created with.'));
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
