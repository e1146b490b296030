/* faceforge web page: plain JavaScript, no build step, nothing fetched from outside this server.
 *
 * Stable element ids (for people and for browser tests):
 *
 *   Tabs        #tab-train #tab-live #tab-photo #tab-people #tab-models  (panels: #panel-<name>)
 *   API key     #key-button (header, shown when the server needs a key), #key-dialog, #key-input,
 *               #key-save, #key-cancel, #key-message. The key lives in localStorage "faceforge.apiKey"
 *               and goes out as X-API-Key (and ?key= on the WebSocket only: the server accepts it nowhere else).
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
 *               #train-model-name, #train-embedder (auto (default) | dlib-resnet | agegender | expression |
 *               effnet-lite0), #train-embedder-help, #train-head ("" = chosen), #train-augment, #train-accurate,
 *               #train-replace, #train-start, #train-progress (bar), #train-status, #train-error,
 *               #train-result (shown when done): #train-accuracy and #train-balanced (what users get:
 *               after the unknown check, validated fold by fold), #train-headline (that sentence, with
 *               denominators), #train-result-note (top-1 without the unknown check, the interval),
 *               #train-unknown (the rule and why; unknown rates), #train-auto (details, shown after a
 *               feature search) with #train-leaderboard (table; the chosen row has class "chosen"),
 *               #train-confusion (table), #train-problems, #train-try-live, #train-try-photo.
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
 *
 * One ES module per tab (train.js, live.js, photo.js, people.js, models.js) over shared ones
 * (util.js, api.js, camera.js, tabs.js, faces.js); this one starts the page.
 */

import { $, $$, show, toast } from './util.js';
import { askKey } from './api.js';
import { switchTab } from './tabs.js';
import { initTrain } from './train.js';
import { initLive, stopLive } from './live.js';
import { initPhoto } from './photo.js';
import { initPeople } from './people.js';
import { initModels } from './models.js';

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
