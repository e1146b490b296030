/* faceforge web page: The API: fetch() with the API key (asked for on 401), and the shared lists of models and galleries. */

import { $, show } from './util.js';

// ----------------------------------------------------------------------------- API and key
const KEY_STORE = 'faceforge.apiKey';
export let apiKey = '';
try { apiKey = localStorage.getItem(KEY_STORE) || ''; } catch (e) { /* storage off */ }
let keyPrompt = null;

export function askKey(message) {
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
export async function api(path, { method = 'GET', body = undefined, raw = false } = {}) {
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
export const store = { models: [], galleries: [] };

export async function refreshModels() {
  const j = await api('/api/models');
  store.models = j.models || [];
  return store.models;
}

export async function refreshGalleries() {
  const j = await api('/api/galleries');
  store.galleries = j.galleries || [];
  return store.galleries;
}
