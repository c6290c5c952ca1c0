// toygres web page: lists instances, images and schedules with live progress, and starts images,
// restores and schedules. Point-in-time restore is in pitr.js.
'use strict';

const $ = (sel) => document.querySelector(sel);
let last = '';

async function api(method, path, body) {
  const init = { method, headers: { 'Accept': 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) { location.reload(); throw new Error('signed out'); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(data && data.error ? data.error.message : response.statusText);
  return data;
}

// Escapes a value for HTML text and for attribute values in either quote.
function text(value) {
  const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  return (value == null ? '' : String(value)).replace(/[&<>"']/g, (c) => escapes[c]);
}

function size(bytes) {
  if (bytes == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, n = bytes;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + units[i];
}

function progress(p) {
  if (!p) return '';
  const step = text(p.step || 'starting');
  if (p.bytes_total) {
    const eta = p.eta_seconds != null ? ` · ETA ${p.eta_seconds}s` : '';
    return `${step} <progress max="${p.bytes_total}" value="${p.bytes_done}"></progress> ` +
      `${size(p.bytes_done)} / ${size(p.bytes_total)}${eta}`;
  }
  return `${step} ${p.bytes_done ? size(p.bytes_done) : ''} <progress></progress>`;
}

function state(s) {
  return `<span class="state state-${text(s)}">${text(s)}</span>`;
}

function uniqueName(base) {
  return `${base.slice(0, 40).replace(/-+$/, '')}-${Date.now().toString(36)}`;
}

function instanceRow(i) {
  const c = i.connection;
  // A Kubernetes instance accepts TLS only: its connection says so (ssl_mode), as the CLI's does.
  const ssl = c && c.ssl_mode ? `?sslmode=${text(c.ssl_mode)}` : '';
  const conn = c ? `${text(c.user)}@${text(c.host)}:${c.port}${ssl}` : '';
  const failure = i.failure_reason ? `<div class="failure">${text(i.failure_reason)}</div>` : '';
  const button = i.state === 'running'
    ? `<button class="image-button" data-id="${i.id}" data-name="${text(i.name)}">Image it</button>` : '';
  const del = i.state === 'running' || i.state === 'failed'
    ? ` <button class="delete-instance" data-id="${i.id}">Delete</button>` : '';
  // protectionCell() is pitr.js's.
  return `<tr data-name="${text(i.name)}" data-id="${i.id}"><td>${text(i.name)}</td><td>${state(i.state)}${failure}</td>` +
    `<td>${text(i.image_type)}</td><td>${conn}</td><td>${progress(i.progress)}</td>` +
    `<td class="protection">${protectionCell(i)}</td><td>${button}${del}</td></tr>`;
}

function imageRow(m) {
  const failure = m.failure_reason ? `<div class="failure">${text(m.failure_reason)}</div>` : '';
  const button = m.state === 'ready'
    ? `<button class="restore-button" data-id="${m.id}" data-name="${text(m.name)}">Restore</button>` : '';
  // A clone image lives on the machine that keeps it: its export is a physical image in the blob store.
  const exp = m.state === 'ready' && m.format === 'clone'
    ? ` <button class="export-image" data-id="${m.id}" data-name="${text(m.name)}" data-instance="${m.source_instance_id}"` +
      ` title="Export as a physical image in the blob store">Export</button>` : '';
  const del = m.state === 'ready' || m.state === 'failed'
    ? ` <button class="delete-image" data-id="${m.id}">Delete</button>` : '';
  return `<tr data-name="${text(m.name)}" data-id="${m.id}"><td>${text(m.name)}</td><td>${state(m.state)}${failure}</td>` +
    `<td>${text(m.format)}</td><td>${size(m.size_bytes)}</td><td>${text((m.databases || []).join(', '))}</td>` +
    `<td>${m.encryption ? text(`${m.encryption.provider} ${m.encryption.key_id}`) : 'none'}</td>` +
    `<td>${progress(m.progress)}</td><td>${button}${exp}${del}</td></tr>`;
}

function scheduleRow(s, names) {
  const keep = s.keep_younger_than_seconds != null ? `${s.keep_last} + ${s.keep_younger_than_seconds}s` : `${s.keep_last}`;
  return `<tr data-name="${text(s.name)}" data-id="${s.id}"><td>${text(s.name)}</td>` +
    `<td>${text(names[s.instance_id] || s.instance_id)}</td><td><code>${text(s.cron)}</code></td>` +
    `<td>${text(s.format)}</td><td>${text(keep)}</td><td>${text(s.last_slot || '')}</td>` +
    `<td class="next-run">${text(s.next_run_at || '')}</td>` +
    `<td><button class="delete-schedule" data-id="${s.id}">Delete</button></td></tr>`;
}

// Keeps the schedule form's instance choices in step with the instances, keeping the choice.
function instanceOptions(instances) {
  const select = $('#new-schedule-instance');
  const options = instances.filter((i) => i.state !== 'deleting')
    .map((i) => `<option value="${i.id}">${text(i.name)}</option>`).join('');
  if (select.dataset.options === options) return;
  const chosen = select.value;
  select.innerHTML = options;
  select.dataset.options = options;
  if (chosen && instances.some((i) => i.id === chosen)) select.value = chosen;
}

// Every record of a listing, following its pages.
async function listAll(path) {
  const items = [];
  let token = null;
  do {
    const page = await api('GET', token ? `${path}?page_token=${encodeURIComponent(token)}` : path);
    items.push(...page.items);
    token = page.next_page_token;
  } while (token);
  return items;
}

async function refresh() {
  try {
    const [instances, images, schedules] = await Promise.all(
      [listAll('/api/instances'), listAll('/api/images'), api('GET', '/api/schedules').then((p) => p.items)]);
    const now = JSON.stringify([instances, images, schedules]);
    if (now !== last) {
      last = now;
      const names = Object.fromEntries(instances.map((i) => [i.id, i.name]));
      $('#instances tbody').innerHTML = instances.map(instanceRow).join('');
      $('#images tbody').innerHTML = images.map(imageRow).join('');
      $('#schedules tbody').innerHTML = schedules.map((s) => scheduleRow(s, names)).join('');
      instanceOptions(instances);
    }
    pitrUpdate(instances);
    $('#status').textContent = `${instances.length} instance(s), ${images.length} image(s), ` +
      `${schedules.length} schedule(s) · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $('#status').textContent = 'cannot reach the server: ' + e.message;
  }
}

async function act(work) {
  $('#message').textContent = '';
  try { await work(); } catch (e) { $('#message').textContent = e.message; }
  await refresh();
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (!b || !b.dataset.id) return;
  b.disabled = true;
  if (b.classList.contains('image-button')) {
    const format = $('#image-format').value;
    act(() => api('POST', '/api/images', { name: uniqueName(b.dataset.name), instance_id: b.dataset.id, format }));
  } else if (b.classList.contains('restore-button')) {
    act(() => api('POST', '/api/instances', { name: uniqueName(b.dataset.name + '-copy'), source_image_id: b.dataset.id }));
  } else if (b.classList.contains('export-image')) {
    const name = uniqueName(b.dataset.name + '-export');
    act(() => api('POST', '/api/images', { name, instance_id: b.dataset.instance, from_image: b.dataset.id }));
  } else if (b.classList.contains('delete-instance')) {
    act(() => api('DELETE', '/api/instances/' + b.dataset.id));
  } else if (b.classList.contains('delete-image')) {
    act(() => api('DELETE', '/api/images/' + b.dataset.id));
  } else if (b.classList.contains('delete-schedule')) {
    act(() => api('DELETE', '/api/schedules/' + b.dataset.id));
  }
});

$('#new-instance').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('#new-instance-name').value.trim();
  const password = $('#new-instance-password').value;
  act(async () => {
    await api('POST', '/api/instances', { name, password });
    $('#new-instance').reset();
  });
});

$('#new-schedule').addEventListener('submit', (e) => {
  e.preventDefault();
  const body = {
    name: $('#new-schedule-name').value.trim(),
    instance_id: $('#new-schedule-instance').value,
    cron: $('#new-schedule-cron').value.trim(),
    format: $('#new-schedule-format').value,
    keep_last: Number($('#new-schedule-keep').value),
  };
  act(async () => {
    await api('POST', '/api/schedules', body);
    $('#new-schedule-name').value = '';
    $('#new-schedule-cron').value = '';
  });
});

// After every script of the page ran (pitr.js's functions are used by refresh()).
window.addEventListener('load', () => {
  refresh();
  setInterval(refresh, 1000);
});
