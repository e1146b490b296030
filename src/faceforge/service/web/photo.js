/* faceforge web page: The Photo tab: analyse one photo (file or URL) and show every face. */

import { $, ATTRIBUTES, h, PALETTE, show, showError } from './util.js';
import { api, refreshGalleries, refreshModels } from './api.js';
import { isImageFile } from './camera.js';
import { panels } from './tabs.js';
import { accurateCheck, chosen, drawBox, FACE_KEYS, fillGallerySelect, fillModelChecks } from './faces.js';

// ----------------------------------------------------------------------------------- Photo
export const photo = { preselect: null, last: null };

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
  fd.append('quality', $('#photo-accurate').checked ? 'accurate' : 'fast');
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

export function initPhoto() {
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
  $('#photo-again').before(accurateCheck('photo-accurate'));
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
