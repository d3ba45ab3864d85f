// The live page of `multistyle serve`: uploads, Run and Stop, and the run's events (Server-Sent Events)
// drawn into one pane per backend and two charts. Everything it loads comes from its own server.
'use strict';

const $ = (id) => document.getElementById(id);
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];
const page = { run: null, choice: { content: 'example', style: 'example', mask: 'none' }, drawPending: false };

function say(text, error) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

async function post(url, body, headers) {
  const answer = await fetch(url, { method: 'POST', body, headers: headers || {} });
  let data = {};
  try { data = await answer.json(); } catch (e) { /* an empty or non-JSON answer */ }
  if (!answer.ok) throw new Error(data.error || `${answer.status} ${answer.statusText}`);
  return data;
}

// -- pictures ------------------------------------------------------------------------------------------
for (const kind of ['content', 'style', 'mask']) {
  $(`${kind}-file`).addEventListener('change', async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    say(`checking ${file.name} ...`);
    try {
      const data = await post(`/api/upload/${kind}`, file, { 'X-Filename': encodeURIComponent(file.name) });
      page.choice[kind] = data.token;
      $(`${kind}-preview`).src = URL.createObjectURL(file);
      $(`${kind}-name`).textContent = `${data.name} (${data.width}×${data.height})`;
      say(`${kind} image: ${data.name} is ready`);
    } catch (error) {
      event.target.value = '';
      say(error.message, true);
    }
  });
  $(`${kind}-example`).addEventListener('click', () => {
    page.choice[kind] = 'example';
    $(`${kind}-file`).value = '';
    $(`${kind}-preview`).src = `/api/example/${kind}`;
    $(`${kind}-name`).textContent = 'example';
  });
}

$('mask-none').addEventListener('click', () => {
  page.choice.mask = 'none';
  $('mask-file').value = '';
  $('mask-preview').removeAttribute('src');
  $('mask-name').textContent = 'none';
});

// -- run and stop --------------------------------------------------------------------------------------
$('run').addEventListener('click', async () => {
  const backends = [...document.querySelectorAll("input[id^='backend-']")]
    .filter((box) => box.checked && !box.disabled).map((box) => box.value);
  const body = {
    content: page.choice.content, style: page.choice.style, backends,
    size: Number($('size').value), epochs: Number($('epochs').value),
    preset: $('preset').value, optimizer: $('optimizer').value, style_loss: $('style-loss').value,
    mask: page.choice.mask,
    parallel: $('parallel').checked,
    network: $('network') ? $('network').checked : false,
    alpha: $('alpha') ? Number($('alpha').value) : 1,
  };
  try {
    await post('/api/run', JSON.stringify(body), { 'Content-Type': 'application/json' });
  } catch (error) {
    say(error.message, true);
  }
});

$('stop').addEventListener('click', async () => {
  try { await post('/api/stop', '{}', { 'Content-Type': 'application/json' }); } catch (error) { say(error.message, true); }
});

// -- panes ---------------------------------------------------------------------------------------------
function pane(name) { return $(`pane-${name}`); }

function resetPanes(run) {
  for (const element of document.querySelectorAll('.pane')) {
    const name = element.dataset.backend;
    if (element.classList.contains('off')) continue;
    const inRun = run && name in run.panes;
    element.querySelector('img').removeAttribute('src');
    element.querySelector('.pane-status').textContent = inRun ? 'waiting' : (run ? 'not in this run' : 'ready');
    element.querySelector('.losses').textContent = '';
    element.querySelector('.speed').textContent = '';
    element.querySelector('.error').textContent = '';
    $(`download-${name}`).hidden = true;
  }
}

function showImage(name, kind, frames) {
  const img = pane(name).querySelector('img');
  img.src = `/api/image/${name}/${kind}.png?run=${page.run.id}&n=${frames}`;
}

function showStatus(name) {
  const state = page.run.panes[name];
  const element = pane(name);
  const last = state.history[state.history.length - 1];
  const epochs = page.run.settings.epochs;
  let text = state.status;
  if (state.status === 'running' && last) text = `running: epoch ${last.epoch} of ${epochs}`;
  if (state.status === 'done') text = `done: ${state.history.length} epochs`;
  if (state.status === 'done' && state.summary && state.summary.pass_seconds != null) {
    text = `done: one pass in ${state.summary.pass_seconds.toFixed(3)} s on ${state.summary.backend}`;
    if (state.summary.job_seconds != null) text += ` (the picture ${state.summary.job_seconds.toFixed(2)} s after the worker took the job)`;
  }
  element.querySelector('.pane-status').textContent = text;
  element.querySelector('.error').textContent = state.error || '';
  if (last) {
    const value = (term) => `${term} ${Number(last[term]).toPrecision(5)}`;
    element.querySelector('.losses').textContent =
      `${value('content')} · ${value('style')}\n${value('tv')} · ${value('total')}`;
  }
  if (state.seconds_per_iteration != null) {
    const shared = page.run.parallel ? ' (shared CPU: backends ran at once)' : '';
    element.querySelector('.speed').textContent = `${state.seconds_per_iteration.toFixed(4)} s/it${shared}`;
  }
  const link = $(`download-${name}`);
  link.hidden = state.status !== 'done';
  link.href = `/api/image/${name}/final.png?run=${page.run.id}`;
}

function runState(data) {
  page.run = data;
  resetPanes(data);
  for (const [name, state] of Object.entries(data ? data.panes : {})) {
    showStatus(name);
    if (state.frames > 0) showImage(name, state.status === 'done' ? 'final' : 'latest', state.frames);
  }
  runStatus();
  scheduleDraw();
}

function runStatus() {
  const run = page.run;
  const going = run && run.status === 'running';
  $('stop').disabled = !going;
  if (!run) { say('ready'); return; }
  const names = Object.keys(run.panes).join(', ');
  const how = run.parallel ? 'at once' : 'one after another';
  if (going) say(`run ${run.id}: ${names}, ${how} (${run.settings.size} px, ${run.settings.epochs} epochs)`);
  else say(`run ${run.id} ${run.status}`);
}

function onPane(event) {
  const data = JSON.parse(event.data);
  if (!page.run || data.run !== page.run.id) return;
  const state = page.run.panes[data.backend];
  state.status = data.status;
  if (event.type === 'epoch') {
    state.history.push(data.record);
    state.seconds_per_iteration = data.seconds_per_iteration;
    scheduleDraw();
  }
  if (event.type === 'failed') state.error = data.error;
  if (event.type === 'done' && data.summary) state.summary = data.summary;
  if (event.type === 'frame' || event.type === 'done') {
    state.frames = data.frames;
    showImage(data.backend, event.type === 'done' ? 'final' : 'latest', data.frames);
  }
  showStatus(data.backend);
}

// -- charts --------------------------------------------------------------------------------------------
function scheduleDraw() {
  if (page.drawPending) return;
  page.drawPending = true;
  requestAnimationFrame(() => { page.drawPending = false; drawCharts(); });
}

function drawCharts() {
  const series = [];
  if (page.run) {
    Object.entries(page.run.panes).forEach(([name, state], index) => {
      let clock = 0;
      const points = state.history.map((row) => { clock += row.seconds; return [row.epoch, clock, row.total]; });
      series.push({ name, colour: COLOURS[index % COLOURS.length], points });
    });
  }
  chart($('chart-epochs'), series, 0, 'epoch');
  chart($('chart-seconds'), series, 1, page.run && page.run.parallel ? 'seconds (shared CPU)' : 'seconds');
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(parent, tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  parent.appendChild(element);
  return element;
}

function chart(element, series, xIndex, xLabel) {
  while (element.firstChild) element.removeChild(element.firstChild);
  const width = Number(element.getAttribute('width')), height = Number(element.getAttribute('height'));
  const left = 64, right = 110, top = 28, bottom = 40;
  const points = series.flatMap((s) => s.points).filter((p) => p[2] > 0);
  svg(element, 'text', { x: left + (width - left - right) / 2, y: height - 6, 'text-anchor': 'middle',
    'font-size': 12 }, xLabel);
  svg(element, 'text', { x: left, y: 16, 'font-size': 12 }, 'total loss (log scale)');
  if (!points.length) return;
  const xMax = Math.max(...points.map((p) => p[xIndex])) || 1;
  let yMin = Math.log10(Math.min(...points.map((p) => p[2]))), yMax = Math.log10(Math.max(...points.map((p) => p[2])));
  if (yMax - yMin < 1e-6) { yMin -= 0.5; yMax += 0.5; }
  const x = (v) => left + (v / xMax) * (width - left - right);
  const y = (v) => top + (1 - (Math.log10(v) - yMin) / (yMax - yMin)) * (height - top - bottom);
  svg(element, 'rect', { x: left, y: top, width: width - left - right, height: height - top - bottom,
    fill: 'none', stroke: '#999' });
  for (const value of [yMin, (yMin + yMax) / 2, yMax]) {
    svg(element, 'text', { x: left - 4, y: y(10 ** value) + 4, 'text-anchor': 'end', 'font-size': 11 },
      (10 ** value).toPrecision(3));
  }
  for (const value of [0, xMax / 2, xMax]) {
    svg(element, 'text', { x: x(value), y: height - bottom + 14, 'text-anchor': 'middle', 'font-size': 11 },
      xIndex === 0 ? String(Math.round(value)) : value.toFixed(1));
  }
  series.forEach((s, index) => {
    const line = s.points.filter((p) => p[2] > 0).map((p) => `${x(p[xIndex]).toFixed(1)},${y(p[2]).toFixed(1)}`);
    if (line.length) svg(element, 'polyline', { points: line.join(' '), fill: 'none', stroke: s.colour, 'stroke-width': 1.6 });
    svg(element, 'text', { x: width - right + 8, y: top + 14 + 16 * index, fill: s.colour, 'font-size': 12 }, s.name);
  });
}

// -- events --------------------------------------------------------------------------------------------
function connect() {
  const source = new EventSource('/api/events');
  source.addEventListener('state', (event) => runState(JSON.parse(event.data).run));
  source.addEventListener('run', (event) => runState(JSON.parse(event.data)));
  for (const name of ['status', 'epoch', 'frame', 'done', 'failed', 'pane']) source.addEventListener(name, onPane);
  source.addEventListener('finished', (event) => {
    const data = JSON.parse(event.data);
    if (page.run && data.run === page.run.id) { page.run.status = data.status; runStatus(); }
  });
  source.onerror = () => { if (source.readyState === EventSource.CONNECTING) say('reconnecting to the server ...', true); };
}

drawCharts();
connect();
