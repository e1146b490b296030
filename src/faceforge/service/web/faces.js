/* faceforge web page: Shared by Live and Photo: model / gallery pickers, the text of a face's labels, drawing boxes. */

import { $, $$, ATTRIBUTES, h, pct } from './util.js';
import { store } from './api.js';

// --------------------------------------------------------------------- the quality preset
/** An "Accurate (slower)" checkbox (id ``id``): ticked, the request says ``quality=accurate``. */
export function accurateCheck(id, title) {
  return h('label', { class: 'check', title: title || 'Test-time augmentation: each face and its mirror image are ' +
                                                     'embedded and averaged; about twice the embedding time.' },
    h('input', { id, type: 'checkbox', value: 'accurate' }), h('span', {}, 'Accurate (slower)'));
}

// --------------------------------------------------------------------- model / gallery pickers
export function fillModelChecks(box, prefix, preselect) {
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

export function fillGallerySelect(select, preselect) {
  const prev = preselect !== undefined ? preselect : select.value;
  select.textContent = '';
  select.append(h('option', { value: '' }, '(none)'));
  for (const g of store.galleries) {
    select.append(h('option', { value: g.name }, `${g.name} (${g.people} ${g.people === 1 ? 'person' : 'people'})`));
  }
  select.value = store.galleries.some((g) => g.name === prev) ? prev : '';
}

export function chosen(prefix) {
  const models = $$(`#${prefix}-models input:checked`).map((x) => x.value);
  const attributes = ATTRIBUTES.filter((a) => $(`#${prefix}-attr-${a}`).checked);
  const gallery = $(`#${prefix}-gallery`).value;
  return { models, attributes, gallery };
}

// Text of one face's labels: "#3 alice 0.93 · female · 31 · happy".
export const FACE_KEYS = new Set(['track', 'box', 'visible', 'landmarks', 'detection_score', 'whole_image', 'score']);

export function faceParts(face, withScores = true) {
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

export function drawBox(ctx, box, text, color, scale, dim) {
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
