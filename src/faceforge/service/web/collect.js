/* faceforge web page: The Collect tab: schedules that ingest an inbox and retrain a model, and their runs.
 *
 * Stable element ids (for people and for browser tests):
 *   #tab-collect, #panel-collect, #collect-list (table; rows tr[data-schedule="<id>"] with td.schedule-next,
 *   td.schedule-last, td.schedule-status and buttons .schedule-run, .schedule-toggle, .schedule-edit,
 *   .schedule-runs, .schedule-delete), #collect-empty, #collect-error.
 *   Form: #collect-form-title, #collect-name, #collect-cron, #collect-cron-hint, #collect-timezone, #collect-inbox,
 *   #collect-dataset, #collect-model, #collect-promote (if_better | always | never), #collect-margin,
 *   #collect-catch-up, #collect-enabled, #collect-save, #collect-cancel, #collect-form-error, #collect-status.
 *   Runs: #collect-runs-card, #collect-runs-title, #collect-runs (div.run per job, div.run-step per step),
 *   #collect-events.
 * This module registers itself (panels.collect) when index.html loads it.
 */

import { $, confirmClick, h, pct, show, showError, toast } from './util.js';
import { api } from './api.js';
import { panels } from './tabs.js';

// --------------------------------------------------------------------------------- Collect
const collect = { editing: null, runsOf: null, timer: null, schedules: [] };
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

function json(body) { return new Blob([JSON.stringify(body)], { type: 'application/json' }); }
function when(t) { return typeof t === 'number' ? new Date(t * 1000).toLocaleString() : '–'; }
function two(n) { return String(n).padStart(2, '0'); }

/** A sentence for the common crontab shapes (the server checks every shape). */
export function describeCron(expr) {
  const f = String(expr || '').trim().split(/\s+/);
  if (f.length !== 5) return 'Five fields: minute hour day-of-month month weekday, e.g. "0 2 * * *" = every day at 02:00.';
  const [mi, ho, dom, mon, dow] = f;
  const num = (x) => /^\d+$/.test(x);
  const at = num(mi) && num(ho) ? `at ${two(ho)}:${two(mi)}` : null;
  const m = /^\*\/(\d+)$/.exec(mi);
  if (m && ho === '*' && dom === '*' && mon === '*' && dow === '*') return `Every ${m[1]} minutes.`;
  if (num(mi) && ho === '*' && dom === '*' && mon === '*' && dow === '*') return `Every hour at minute ${mi}.`;
  if (at && dom === '*' && mon === '*') {
    if (dow === '*') return `Every day ${at}.`;
    if (dow === '1-5') return `Every weekday (Monday to Friday) ${at}.`;
    if (/^[0-7](,[0-7])*$/.test(dow)) return `Every ${dow.split(',').map((d) => DAYS[Number(d) % 7]).join(', ')} ${at}.`;
  }
  if (at && num(dom) && mon === '*' && dow === '*') return `On day ${dom} of every month ${at}.`;
  return 'A custom schedule: minute hour day-of-month month weekday (weekday 0 or 7 = Sunday).';
}

function statusText(s) {
  if (!s.enabled) return 'disabled';
  return s.last_status ? `last run ${s.last_status}` : 'never run';
}

async function collectShow() {
  const err = $('#collect-error');
  showError(err, null);
  try {
    collect.schedules = (await api('/api/schedules')).schedules || [];
  } catch (e) {
    showError(err, e);
    return;
  }
  const table = $('#collect-list');
  table.textContent = '';
  $('#collect-empty').textContent = collect.schedules.length ? ''
    : 'No schedules yet. Make one below: every night it files the new photos of an inbox folder and retrains a model.';
  if (collect.schedules.length) {
    table.append(h('thead', {}, h('tr', {}, ['Name', 'When', 'Next run', 'Last run', 'Status', ''].map((t) => h('th', {}, t)))));
    const body = h('tbody');
    for (const s of collect.schedules) body.append(scheduleRow(s));
    table.append(body);
  }
  if (collect.runsOf) showRuns(collect.runsOf);
  const busy = collect.schedules.some((s) => s.last_status === 'queued' || s.last_status === 'running');
  clearTimeout(collect.timer);
  if (busy && panels.collect.visible) collect.timer = setTimeout(collectShow, 2000);
}

function scheduleRow(s) {
  const err = $('#collect-error');
  const id = encodeURIComponent(s.id);
  const run = h('button', { class: 'btn small schedule-run', onclick: async () => {
    try {
      await api(`/api/schedules/${id}/run`, { method: 'POST' });
      toast(`"${s.name}" queued.`);
      collect.runsOf = s.id;
    } catch (e) { showError(err, e); }
    collectShow();
  } }, 'Run now');
  const toggle = h('button', { class: 'btn small schedule-toggle', onclick: async () => {
    try { await api(`/api/schedules/${id}/${s.enabled ? 'disable' : 'enable'}`, { method: 'POST' }); } catch (e) { showError(err, e); }
    collectShow();
  } }, s.enabled ? 'Disable' : 'Enable');
  const edit = h('button', { class: 'btn ghost small schedule-edit', onclick: () => editSchedule(s) }, 'Edit');
  const runs = h('button', { class: 'btn ghost small schedule-runs', onclick: () => showRuns(s.id) }, 'Runs');
  const del = h('button', { class: 'btn danger ghost small schedule-delete' }, 'Delete');
  confirmClick(del, async () => {
    try {
      await api(`/api/schedules/${id}`, { method: 'DELETE' });
      toast(`Deleted ${s.name}.`);
      if (collect.runsOf === s.id) { collect.runsOf = null; show($('#collect-runs-card'), false); }
      if (collect.editing === s.id) resetForm();
    } catch (e) { showError(err, e); }
    collectShow();
  });
  return h('tr', { dataset: { schedule: s.id } },
    h('td', { class: 'strong' }, s.name),
    h('td', { title: `${s.cron} (${s.timezone})` }, h('code', {}, s.cron), h('div', { class: 'muted small' }, describeCron(s.cron))),
    h('td', { class: 'schedule-next small' }, when(s.next_run)),
    h('td', { class: 'schedule-last small' }, when(s.last_run)),
    h('td', { class: 'schedule-status small' }, statusText(s)),
    h('td', { class: 'right nowrap' }, run, ' ', toggle, ' ', edit, ' ', runs, ' ', del));
}

// ---------------------------------------------------------------------------------- the form
function stepOf(s, name) { return (s.steps || []).find((x) => x.step === name) || {}; }

function editSchedule(s) {
  collect.editing = s.id;
  const ingest = stepOf(s, 'ingest');
  const retrain = stepOf(s, 'retrain');
  $('#collect-form-title').textContent = `Edit "${s.name}"`;
  $('#collect-name').value = s.name;
  $('#collect-cron').value = s.cron;
  $('#collect-timezone').value = s.timezone || '';
  $('#collect-inbox').value = (ingest.inboxes || [])[0] || '';
  $('#collect-dataset').value = ingest.into || retrain.dataset || '';
  $('#collect-model').value = retrain.model || '';
  $('#collect-promote').value = retrain.promote || 'if_better';
  $('#collect-margin').value = String(retrain.margin ?? 0);
  $('#collect-catch-up').checked = !!s.catch_up;
  $('#collect-enabled').checked = !!s.enabled;
  const other = (s.steps || []).some((x) => x.step !== 'ingest' && x.step !== 'retrain');
  $('#collect-status').textContent = other ? 'This schedule has steps made through the API; saving replaces them with ingest + retrain.' : '';
  $('#collect-save').textContent = 'Save changes';
  show($('#collect-cancel'));
  cronHint();
  $('#collect-name').focus();
}

function resetForm() {
  collect.editing = null;
  $('#collect-form-title').textContent = 'New schedule';
  for (const k of ['name', 'inbox', 'dataset', 'model', 'timezone']) $(`#collect-${k}`).value = '';
  $('#collect-cron').value = '0 2 * * *';
  $('#collect-promote').value = 'if_better';
  $('#collect-margin').value = '0';
  $('#collect-catch-up').checked = true;
  $('#collect-enabled').checked = true;
  $('#collect-save').textContent = 'Create schedule';
  $('#collect-status').textContent = '';
  show($('#collect-cancel'), false);
  showError($('#collect-form-error'), null);
  cronHint();
}

function cronHint() { $('#collect-cron-hint').textContent = describeCron($('#collect-cron').value); }

async function saveSchedule() {
  const err = $('#collect-form-error');
  showError(err, null);
  const v = (k) => $(`#collect-${k}`).value.trim();
  try {
    const missing = [['name', 'a name'], ['cron', 'when to run'], ['inbox', 'the inbox folder'],
                     ['dataset', 'the dataset folder'], ['model', 'the model file']].filter(([k]) => !v(k)).map(([, w]) => w);
    if (missing.length) throw new Error(`Give ${missing.join(', ')}.`);
    const margin = Number(v('margin') || 0);
    if (!Number.isFinite(margin)) throw new Error('The margin is a number, e.g. 0 or 0.01.');
    const body = {
      name: v('name'), cron: v('cron'), catch_up: $('#collect-catch-up').checked, enabled: $('#collect-enabled').checked,
      steps: [{ step: 'ingest', inboxes: [v('inbox')], into: v('dataset') },
              { step: 'retrain', dataset: v('dataset'), model: v('model'), promote: $('#collect-promote').value, margin }],
    };
    if (v('timezone')) body.timezone = v('timezone');
    const editing = collect.editing;
    const s = editing ? await api(`/api/schedules/${encodeURIComponent(editing)}`, { method: 'PUT', body: json(body) })
                      : await api('/api/schedules', { method: 'POST', body: json(body) });
    toast(editing ? `Saved "${s.name}".` : `Created "${s.name}": next run ${when(s.next_run)}.`);
    resetForm();
    await collectShow();
  } catch (e) {
    showError(err, e);
  }
}

// ---------------------------------------------------------------------------------- runs
function countsOf(report) {
  const parts = [];
  for (const [k, x] of Object.entries(report || {})) {
    const name = k.replace(/_/g, ' ');
    if (typeof x === 'number' && !['seconds', 'version'].includes(k)) {
      parts.push(k.includes('accuracy') ? `${name} ${pct(x)}` : `${name} ${Math.round(x * 1000) / 1000}`);
    } else if (Array.isArray(x) && k !== 'inboxes') {
      parts.push(`${name} ${x.length}`);
    } else if (x && typeof x === 'object' && Object.values(x).length && Object.values(x).every((y) => typeof y === 'number')) {
      parts.push(`${name}: ${Object.entries(x).map(([a, b]) => `${a} ${b}`).join(', ')}`);
    }
  }
  return parts.join(' · ');
}

function stepBlock(st) {
  const r = st.report || {};
  const sentences = [];
  if (r.version) sentences.push(`Version ${r.version}${r.promoted === true ? ', promoted' : r.promoted === false ? ', not promoted' : ''}.`);
  for (const k of ['decision', 'reason']) if (typeof r[k] === 'string' && r[k]) sentences.push(r[k]);
  if (r.headline && r.headline.text) sentences.push(`What you get: ${r.headline.text}.`);
  if (r.health && typeof r.health === 'object') {
    const notes = (Array.isArray(r.health) ? r.health : Object.values(r.health)).flatMap((x) => (x && (x.warnings || x.problems)) || (typeof x === 'string' ? [x] : []));
    if (notes.length) sentences.push(`Class health: ${notes.slice(0, 6).join('; ')}.`);
  }
  if (r.refused && typeof r.refused === 'object') {
    for (const [cls, why] of Object.entries(r.refused)) sentences.push(`Refused for ${cls}: ${why}`);
  }
  return h('div', { class: 'run-step', style: 'margin:6px 0 0 14px', dataset: { step: st.step } },
    h('div', {}, h('b', {}, st.step), ' ', h('span', { class: 'muted small' }, `${st.status}, ${Math.round(st.seconds || 0)} s`)),
    sentences.length ? h('p', { class: 'small' }, sentences.join(' ')) : null,
    h('p', { class: 'muted small' }, countsOf(r)));
}

async function showRuns(sid) {
  collect.runsOf = sid;
  const card = $('#collect-runs-card');
  const box = $('#collect-runs');
  const s = collect.schedules.find((x) => x.id === sid);
  $('#collect-runs-title').textContent = s ? `Runs of "${s.name}"` : 'Runs';
  show(card);
  let j;
  try {
    j = await api(`/api/schedules/${encodeURIComponent(sid)}/runs?limit=20`);
  } catch (e) {
    showError($('#collect-error'), e);
    return;
  }
  if (collect.runsOf !== sid) return;
  box.textContent = '';
  if (!j.runs.length) box.append(h('p', { class: 'muted small' }, 'No runs yet: press "Run now", or wait for the next run.'));
  for (const job of j.runs) {
    const how = { run_now: 'run now', catch_up: 'catch-up at start', cron: 'on schedule' }[job.params.trigger] || job.params.trigger;
    const steps = (job.result && job.result.steps) || [];
    const head = h('div', { class: 'row between' }, h('b', {}, when(job.created)),
      h('span', { class: 'muted small' }, `${how} · ${job.status}${job.status === 'running' ? ` ${pct(job.progress)}: ${job.message}` : ''}`));
    box.append(h('div', { class: 'run', style: 'border-top:1px solid var(--line);padding:10px 0', dataset: { job: job.id, status: job.status } }, head,
      job.error ? h('p', { class: 'error small' }, job.error) : null, steps.map(stepBlock)));
  }
  const ev = $('#collect-events');
  ev.textContent = '';
  const skipped = (j.events || []).filter((e) => e.event === 'skipped');
  if (skipped.length) {
    ev.append(h('p', { class: 'muted small' }, `Skipped firings (a run was still going): ` +
      skipped.slice(0, 5).map((e) => when(e.at)).join(', ')));
  }
}

function initCollect() {
  $('#collect-save').addEventListener('click', saveSchedule);
  $('#collect-cancel').addEventListener('click', resetForm);
  $('#collect-cron').addEventListener('input', cronHint);
  resetForm();
  panels.collect = {
    visible: false,
    show: () => { panels.collect.visible = true; collectShow(); },
    hide: () => { panels.collect.visible = false; clearTimeout(collect.timer); },
  };
}

initCollect();
