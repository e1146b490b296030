/* faceforge web page: Small DOM helpers shared by every tab: $ / $$, h() to build elements, errors, toasts, names. */

// ------------------------------------------------------------------------------------ helpers
export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const ATTRIBUTES = ['gender', 'age', 'emotion'];
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$/;
export const PALETTE = ['#6366f1', '#f97316', '#10b981', '#ec4899', '#0ea5e9', '#eab308', '#8b5cf6', '#ef4444'];

export function h(tag, attrs = {}, ...children) {
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

export function show(elem, on = true) { elem.hidden = !on; }

export function showError(box, err) {
  const msg = err ? (err.message || String(err)) : '';
  box.textContent = msg;
  show(box, !!msg);
}

let toastTimer = null;
export function toast(msg, ms = 3000) {
  const t = $('#toast');
  t.textContent = msg;
  show(t);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(t, false), ms);
}

export function pct(x) {
  return typeof x === 'number' && isFinite(x) ? `${Math.round(x * 1000) / 10}%` : '–';
}

export function checkName(name, what) {
  if (!NAME_RE.test(name)) {
    throw new Error(`${what} "${name}" is not allowed: use 1–64 letters, digits, spaces, "_", "." or "-", ` +
                    'starting with a letter or digit.');
  }
  return name;
}

// Two clicks to delete: the first arms the button for 4 s.
export function confirmClick(button, action) {
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
