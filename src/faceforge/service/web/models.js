/* faceforge web page: The Models tab: list, download (as .ffm or for the browser), upload and delete model files. */

import { $, checkName, confirmClick, h, pct, showError, toast } from './util.js';
import { api, refreshModels, store } from './api.js';
import { panels } from './tabs.js';

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
    const web = h('button', { class: 'btn small ghost model-bundle', dataset: { model: m.name },
      title: 'A zip to run this model in a browser, offline: unzip, run "python3 -m http.server" in it, open the page' },
    'Download for the browser');
    web.addEventListener('click', () => downloadBundle(m.name, web));
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
      h('td', { class: 'right nowrap' }, dl, ' ', web, ' ', del)));
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

async function downloadBundle(name, button) {
  const status = $('#models-status');
  button.disabled = true;
  status.textContent = `Building the browser bundle of ${name}…`;
  try {
    const res = await api(`/api/models/${encodeURIComponent(name)}/bundle`, { raw: true });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-web.zip` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = `Browser bundle of ${name}: ${(blob.size / 1048576).toFixed(1)} MB. Unzip it, run "python3 -m http.server" in the folder and open http://localhost:8000/.`;
  } catch (e) {
    status.textContent = '';
    showError($('#models-error'), e);
  } finally {
    button.disabled = false;
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

export function initModels() {
  $('#models-upload').addEventListener('click', uploadModel);
  $('#models-upload-file').addEventListener('change', () => {
    const f = $('#models-upload-file').files[0];
    $('#models-upload-filename').textContent = f ? f.name : 'no file chosen';
    const name = $('#models-upload-name');
    if (f && !name.value.trim()) name.value = f.name.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9 _.-]/g, '-').slice(0, 64);
  });
  panels.models = { show: modelsShow };
}
