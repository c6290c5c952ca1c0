// toygres web page, point-in-time restore: protection of instances (Protect button, recovery
// window and RPO in the instances table) and the "restore to a time" form. Loaded after app.js,
// whose api(), act(), text() and uniqueName() it uses; app.js calls protectionCell() and
// pitrUpdate().
'use strict';

// Recovery windows of protected instances, by instance id.
const windows = {};
let windowsBusy = false;

function clock(time) {
  return time ? new Date(time).toLocaleString() : '';
}

function windowText(w) {
  if (!w) return '';
  const gaps = (w.gaps || []).length ? ` · ${w.gaps.length} gap(s): restorable only after the last` : '';
  const switched = (w.timeline_switches || []).length ? ` · timeline ${w.timeline} (switched)` : '';
  const rpo = (w.rpo_seconds != null ? ` · RPO ${w.rpo_seconds.toFixed(1)}s` : '') + gaps + switched;
  if (!w.earliest || !w.latest) return `nothing restorable yet (base image pending)${rpo}`;
  return `${clock(w.earliest.time)} – ${clock(w.latest.time)}${rpo}`;
}

// What the window span of an instance's row says.
function windowLabel(i) {
  const p = i.protection;
  if (!p) return '';
  return (p.state === 'active' ? '' : 'stopped ') + windowText(windows[i.id]);
}

// The protection column of an instance's row (the window span empty when `bare`).
function protectionCell(i, bare) {
  const p = i.protection;
  const span = p ? `<span class="window">${bare ? '' : text(windowLabel(i))}</span>` : '';
  if (p && p.state === 'active') {
    // Nothing restorable yet: protecting again takes a base image when none is being taken.
    const w = windows[i.id];
    const base = w && !w.earliest && i.state === 'running'
      ? ` <button class="protect-button" data-id="${i.id}" title="Take a physical base image">Take base image</button>` : '';
    return `<span class="protected">protected</span> ${span}${base}`;
  }
  const protect = i.state === 'running' ? ` <button class="protect-button" data-id="${i.id}">Protect</button>` : '';
  return `${span}${protect}`;
}

// Keeps the form's choice of protected instances in step, keeping the choice.
function pitrOptions(instances) {
  const select = $('#pitr-source');
  const options = instances.filter((i) => i.protection)
    .map((i) => `<option value="${i.id}" data-name="${text(i.name)}">${text(i.name)}</option>`).join('');
  if (select.dataset.options === options) return;
  const chosen = select.value;
  select.innerHTML = options;
  select.dataset.options = options;
  if (chosen && instances.some((i) => i.id === chosen)) select.value = chosen;
}

// Called by app.js after each refresh: the windows of protected instances, then their cells.
async function pitrUpdate(instances) {
  pitrOptions(instances);
  if (windowsBusy) return;
  windowsBusy = true;
  try {
    await Promise.all(instances.filter((i) => i.protection).map(async (i) => {
      try { windows[i.id] = await api('GET', `/api/instances/${i.id}/recovery-window`); } catch (e) { /* next time */ }
    }));
    for (const i of instances) {
      const cell = document.querySelector(`#instances tr[data-id="${i.id}"] td.protection`);
      if (!cell) continue;
      // Rewritten when a button comes or goes; otherwise only the window's text changes (so
      // that a button is not replaced under the pointer).
      const shape = protectionCell(i, true);
      if (cell.dataset.shape !== shape) {
        cell.innerHTML = protectionCell(i);
        cell.dataset.shape = shape;
      }
      const span = cell.querySelector('.window');
      if (span && span.textContent !== windowLabel(i)) span.textContent = windowLabel(i);
    }
  } finally {
    windowsBusy = false;
  }
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('button.protect-button');
  if (b) act(() => api('POST', `/api/instances/${b.dataset.id}/protection`));
});

$('#pitr-restore').addEventListener('submit', (e) => {
  e.preventDefault();
  const select = $('#pitr-source');
  const source = select.value;
  const option = select.selectedOptions[0];
  const when = $('#pitr-time').value;
  const point = { instance_id: source };
  // datetime-local is the browser's local time; the API takes RFC 3339 (empty: the latest moment).
  if (when) point.time = new Date(when).toISOString();
  const name = $('#pitr-name').value.trim() || uniqueName(`${option ? option.dataset.name : 'pitr'}-pitr`);
  act(async () => {
    if (!source) throw new Error('protect an instance first');
    await api('POST', '/api/instances', { name, point_in_time: point });
    $('#pitr-name').value = '';
  });
});
