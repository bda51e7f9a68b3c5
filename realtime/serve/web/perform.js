// Performer page: send the camera, show camera | generated target. Needs the server's token,
// given in the address (#token=...) or typed in; it never leaves the page except to the server.
import { Link, Meter, clockOffset, exposeGrab, showStats } from './rtc.js';

const camera = document.getElementById('camera');
const result = document.getElementById('result');
const state = document.getElementById('state');
const form = document.getElementById('login');
const tokenInput = document.getElementById('token');
const stats = {};
window.dancenow = stats;

exposeGrab({ camera, result });

// What shows behind the person, for everyone watching: the target's room or a flat key colour
// (only targets whose generator paints an alpha can change it: the list comes from the server).
const NAMES = { plate: 'the room', green: 'green (key)', blue: 'blue (key)', black: 'black', white: 'white' };

async function offerBackgrounds(token) {
  const select = document.getElementById('background');
  const status = await (await fetch('/api/status')).json();
  if (!status.backgrounds || status.backgrounds.length < 2) return;  // this target keeps its room
  for (const name of status.backgrounds) select.add(new Option(NAMES[name] || name, name));
  select.value = status.background;
  select.addEventListener('change', async () => {
    const r = await fetch('/api/background', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ background: select.value }),
    });
    if (!r.ok) state.textContent = (await r.json()).error;
  });
  document.getElementById('behind').hidden = false;
}

// What the camera shows of the performer (head and shoulders, head to waist, head to knees, whole
// body), what the target lends, and how to take full control: the server's calibration says.
async function showWhatIsSeen() {
  const seen = document.getElementById('seen');
  try {
    const { calibration } = await (await fetch('/api/status')).json();
    seen.textContent = calibration && calibration.message ? calibration.message : '';
    seen.dataset.view = (calibration && calibration.view) || '';
    seen.dataset.calibration = (calibration && calibration.state) || '';
  } catch { /* the server is restarting: keep the last words */ }
}

async function start(token) {
  form.hidden = true;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } }, audio: false,
    });
  } catch (err) {
    state.textContent = `no camera: ${err.message}`;
    return;
  }
  camera.srcObject = stream;
  const [cam] = stream.getVideoTracks();
  const meter = new Meter(result, stats);
  try { meter.offset = await clockOffset(); } catch { /* keep 0 */ }
  const link = new Link({
    endpoint: '/api/perform',
    headers: { Authorization: `Bearer ${token}` },
    stats,
    setup: (pc) => pc.addTransceiver(cam, { direction: 'sendrecv' }),
    onTrack: (track) => { result.srcObject = new MediaStream([track]); },
    onState: (s) => { state.textContent = s; stats.state = s; },
  });
  showStats(document.getElementById('stats'), stats);
  link.connect();
  setInterval(showWhatIsSeen, 1000);
  offerBackgrounds(token).catch((err) => { state.textContent = `backgrounds: ${err.message}`; });
}

const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) {
  history.replaceState(null, '', location.pathname);   // keep the token out of the history
  start(fromHash);
} else {
  form.addEventListener('submit', (e) => { e.preventDefault(); start(tokenInput.value.trim()); });
}
