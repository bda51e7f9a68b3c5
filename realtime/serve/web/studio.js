// Studio page: record (MediaRecorder) or upload a video, run make-target on it, follow the job,
// switch to or delete the targets and recordings. Needs the server's token (#token=... or typed).
import { Link } from './rtc.js';

const $ = (id) => document.getElementById(id);
const state = $('state');
let token = null;

async function api(method, path, body = null, raw = false) {
  const headers = { Authorization: `Bearer ${token}` };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  if (raw) return r;
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || `${r.status}`);
  return data;
}

const say = (text) => { state.textContent = text; };
const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function upload(blob, filename) {
  const form = new FormData();
  form.append('video', blob, filename);
  const name = ($('name').value || 'rec').replace(/[^A-Za-z0-9_-]/g, '') || 'rec';
  say(`uploading ${filename} (${mib(blob.size)})…`);
  const got = await api('POST', `/api/studio/upload?name=${encodeURIComponent(`${name}-${Date.now() % 1e6}`)}`, form);
  say(`uploaded ${got.upload}: ${got.seconds} s of video`);
  await refresh(got.upload);
}

// MediaRecorder, uploaded when it stops: one file through the same checks as any upload.
async function record() {
  const stream = $('camera').srcObject;
  const type = ['video/webm;codecs=vp8', 'video/webm', 'video/mp4'].find((t) => MediaRecorder.isTypeSupported(t));
  const rec = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  const seconds = Number($('seconds').value) || 60;
  const done = new Promise((resolve) => { rec.onstop = resolve; });
  await api('POST', '/api/studio/verdict').catch(() => {});   // the moves seen: from this recording on
  rec.start(1000);
  const t0 = Date.now();
  const tick = setInterval(() => { $('recording').textContent = `recording ${Math.round((Date.now() - t0) / 1000)} / ${seconds} s`; }, 500);
  await new Promise((r) => { setTimeout(r, seconds * 1000); });
  rec.stop();
  await done;
  clearInterval(tick);
  $('recording').textContent = '';
  const ext = (rec.mimeType || '').includes('mp4') ? 'mp4' : 'webm';
  await upload(new Blob(chunks, { type: rec.mimeType }), `recording.${ext}`);
}

// The live verdict: the camera also goes to the live loop as a performer's does, and its tracker
// says whether the person is whole in view, at a good distance, in enough light, and which moves
// (arms up, to the side, a turn, a crouch) it has seen so far.
function connectCamera(stream) {
  const [cam] = stream.getVideoTracks();
  const link = new Link({
    endpoint: '/api/perform',
    headers: { Authorization: `Bearer ${token}` },
    stats: {},
    setup: (pc) => pc.addTransceiver(cam, { direction: 'sendrecv' }),
    onTrack: () => {},
    onState: (s) => { if (s.startsWith('refused')) $('verdict').textContent = `live verdict unavailable: ${s}`; },
  });
  link.connect();
  setInterval(async () => {
    try {
      const v = await api('GET', '/api/studio/verdict');
      const ok = (b) => (b ? '✓' : '✗');
      const moves = ['arms up', 'arm to the side', 'turn', 'crouch'].map((m) => `${ok(v.seen.includes(m))} ${m}`).join('  ');
      $('verdict').textContent = `${ok(v.in_view)} head to feet · ${moves} · coverage ${Math.round(100 * v.coverage)}%`
        + (v.advice.length ? ` · ${v.advice.join('; ')}` : '');
      $('verdict').dataset.inView = v.in_view;
    } catch { /* the live loop restarts: try again */ }
  }, 1000);
}

function showJob(job) {
  const el = $('job');
  if (!job) { el.textContent = 'No target is being made.'; return; }
  const parts = [`${job.name}: ${job.state}`];
  if (job.stage) parts.push(`stage ${job.stage}`);
  const p = job.progress;
  if (p) {
    parts.push(`${p.stage} step ${p.step}${p.total ? ` of ${p.total}` : ''}`);
    if (p.eta_s != null) parts.push(`about ${Math.ceil(p.eta_s / 60)} min left in this stage`);
    if (p.losses && p.losses.g_l1 != null) parts.push(`L1 ${p.losses.g_l1.toFixed(2)}`);
  }
  const ev = job.stages && job.stages.evaluate;
  if (ev) {
    const by = ev.beats_nearest_by;
    parts.push(by > 0 ? `it beats the nearest-pose baseline by ${by.toFixed(3)} body SSIM (${ev.body_ssim.toFixed(3)})`
      : `it does not beat the nearest-pose baseline (${ev.body_ssim.toFixed(3)} vs ${ev.nearest_pose_ssim.toFixed(3)} body SSIM): film more varied movement`);
  }
  if (job.error) parts.push(job.error);
  el.textContent = parts.join(' · ');
}

async function showPreview(job) {
  if (!job || job.state !== 'running') return;
  const r = await api('GET', '/api/studio/preview', null, true);
  if (!r.ok) return;
  const img = $('preview');
  const old = img.src;
  img.src = URL.createObjectURL(await r.blob());
  img.hidden = false;
  if (old.startsWith('blob:')) URL.revokeObjectURL(old);
}

function item(list, text, actions) {
  const li = document.createElement('li');
  li.textContent = text;
  for (const [label, fn] of actions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', () => fn().catch((err) => say(err.message)));
    li.append(' ', b);
  }
  list.append(li);
}

async function refresh(pick = null) {
  const s = await api('GET', '/api/studio');
  const select = $('uploads');
  select.replaceChildren(...s.uploads.map((u) => new Option(`${u.name} (${mib(u.bytes)})`, u.name)));
  if (pick) select.value = pick;
  const targets = $('targets');
  targets.replaceChildren();
  for (const name of s.targets) {
    item(targets, `target ${name}`, [
      ['Switch to', async () => { await api('POST', '/api/target', { target: name }); say(`on stage: ${name}`); }],
      ['Delete', async () => { await api('DELETE', `/api/studio/targets/${name}`); await refresh(); }],
    ]);
  }
  const recordings = $('recordings');
  recordings.replaceChildren();
  for (const u of s.uploads) {
    item(recordings, `recording ${u.file} (${mib(u.bytes)})`, [
      ['Delete', async () => { await api('DELETE', `/api/studio/uploads/${u.name}`); await refresh(); }],
    ]);
  }
  $('quota').textContent = `disk: ${mib(s.quota.used)} of ${mib(s.quota.limit)}`;
  showJob(s.job);
  await showPreview(s.job);
}

async function open(t) {
  token = t;
  $('login').hidden = true;
  $('studio').hidden = false;
  try {
    $('camera').srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    connectCamera($('camera').srcObject);
  } catch (err) {
    say(`no camera (${err.message}): upload a video instead`);
  }
  const guard = (fn) => () => fn().catch((err) => say(err.message));
  $('record').addEventListener('click', guard(record));
  $('upload').addEventListener('click', guard(async () => {
    const f = $('file').files[0];
    if (!f) throw new Error('choose a video file first');
    await upload(f, f.name);
  }));
  $('make').addEventListener('click', guard(async () => {
    await api('POST', '/api/studio/jobs', { name: $('name').value, upload: $('uploads').value, minutes: Number($('minutes').value) });
    await refresh();
  }));
  $('cancel').addEventListener('click', guard(async () => { await api('DELETE', '/api/studio/jobs'); await refresh(); }));
  await refresh();
  setInterval(() => refresh().catch((err) => say(err.message)), 3000);
}

const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) {
  history.replaceState(null, '', location.pathname);
  open(fromHash).catch((err) => say(err.message));
} else {
  $('login').addEventListener('submit', (e) => { e.preventDefault(); open($('token').value.trim()).catch((err) => say(err.message)); });
}
