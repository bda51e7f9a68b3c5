// Viewer page: receive the generated target, show fps and glass-to-glass latency.
// `/?view=bare`: the video alone, filling the window (an OBS Browser Source); style.css does it.
import { Link, Meter, clockOffset, exposeGrab, showStats } from './rtc.js';

if (new URLSearchParams(location.search).get('view') === 'bare') document.documentElement.classList.add('bare');
const video = document.getElementById('target');
const state = document.getElementById('state');
const stats = {};
window.dancenow = stats;   // read by tests and `dancenow bench web`
exposeGrab({ target: video });

const meter = new Meter(video, stats);
const link = new Link({
  endpoint: '/api/offer',
  stats,
  setup: (pc) => pc.addTransceiver('video', { direction: 'recvonly' }),
  onTrack: (track) => { video.srcObject = new MediaStream([track]); },
  onState: (s) => { state.textContent = s; stats.state = s; },
});
showStats(document.getElementById('stats'), stats);

async function syncClock() {
  try { meter.offset = await clockOffset(); } catch { /* server away: keep the last offset */ }
}
syncClock();
setInterval(syncClock, 30000);
link.connect();
