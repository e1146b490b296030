/* faceforge web page: The Live tab: webcam frames over a WebSocket, tracked faces drawn on the video. */

import { $, ATTRIBUTES, PALETTE, show, showError, sleep } from './util.js';
import { api, apiKey, refreshGalleries, refreshModels } from './api.js';
import { camera, grab, grabCanvas } from './camera.js';
import { panels } from './tabs.js';
import { chosen, drawBox, faceParts, fillGallerySelect, fillModelChecks } from './faces.js';

// ------------------------------------------------------------------------------------ Live
export const live = {
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

export function stopLive() {
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

export function initLive() {
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
