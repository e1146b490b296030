/* faceforge web page: Tab switching; each tab registers panels[name] = { show, hide }. */

import { $, $$ } from './util.js';

// ------------------------------------------------------------------------------------ tabs
export const panels = {};
let currentTab = 'train';

export function switchTab(name) {
  if (name === currentTab) return;
  const leaving = currentTab;
  currentTab = name;
  for (const b of $$('.tab')) {
    const on = b.dataset.panel === name;
    b.classList.toggle('active', on);
    b.setAttribute('aria-selected', on ? 'true' : 'false');
  }
  for (const p of $$('.panel')) p.classList.toggle('active', p.id === `panel-${name}`);
  if (panels[leaving] && panels[leaving].hide) panels[leaving].hide();
  if (panels[name] && panels[name].show) panels[name].show();
}
