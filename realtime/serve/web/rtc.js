// Shared by the viewer and performer pages: one peer connection to the dancenow server,
// offer posted once ICE gathering completes (aiortc does no trickle ICE), a "bye" on pagehide,
// reconnection when the server goes away, received fps from getStats and glass-to-glass latency
// from the pixel stamps.
import { ageMs, bandHeight, decodeStamp } from './stamp.js';

export function waitGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// Offset to add to Date.now() to get the server's wall clock (the stamps' clock): the sample
// with the shortest round trip wins.
export async function clockOffset(samples = 5) {
  let best = null;
  for (let i = 0; i < samples; i++) {
    const t0 = Date.now();
    const r = await fetch('/api/clock', { cache: 'no-store' });
    const { ms } = await r.json();
    const t1 = Date.now();
    if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: ms - (t0 + t1) / 2 };
  }
  return best.offset;
}

// Stamps and fps of a <video>; results in `stats` (also shown by the pages).
export class Meter {
  constructor(video, stats) {
    this.video = video;
    this.stats = stats;
    this.offset = 0;
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    stats.latencies = [];   // {t, ms, counter}: drained by benchmarks, capped here
    stats.stamped = 0;
    const onFrame = () => { this.read(); video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
  }

  read() {
    const w = this.video.videoWidth;
    if (w < 8) return;
    const band = bandHeight(w);
    if (this.canvas.width !== w || this.canvas.height !== band) {
      this.canvas.width = w;
      this.canvas.height = band;
    }
    this.ctx.drawImage(this.video, 0, 0, w, band, 0, 0, w, band);
    const stamp = decodeStamp(this.ctx.getImageData(0, 0, w, band).data, w);
    if (!stamp) return;
    // the stamp is an instrument, not a picture: hide its band (only when there is one)
    const clip = `inset(${(100 * (band + 2)) / this.video.videoHeight}% 0 0 0)`;
    if (this.clip !== clip) {
      this.clip = clip;
      this.video.style.clipPath = clip;
    }
    const now = Date.now();
    const ms = ageMs(stamp.time, now + this.offset);
    this.stats.stamped += 1;
    this.stats.latency = ms;
    this.stats.latencies.push({ t: now, ms, counter: stamp.counter });
    if (this.stats.latencies.length > 20000) this.stats.latencies.splice(0, 10000);
  }
}

// A connection that keeps itself alive: reconnects after failures or a server restart.
export class Link {
  constructor({ endpoint, headers = {}, setup, onTrack, onState, stats }) {
    Object.assign(this, { endpoint, headers, setup, onTrack, onState, stats });
    this.pc = null;
    this.id = null;
    this.closing = false;
    this.retry = null;
    this.stats.reconnects = -1;
    this.stats.fps = 0;
    this.stats.framesDecoded = 0;
    window.addEventListener('pagehide', () => this.close());
    setInterval(() => this.poll(), 1000);
  }

  async connect() {
    clearTimeout(this.retry);
    this.teardown();
    this.stats.reconnects += 1;
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    this.setup(pc);
    pc.ontrack = (e) => {
      // live video: ask for the smallest jitter buffer (Chromium honours it; others ignore it)
      if ('jitterBufferTarget' in e.receiver) e.receiver.jitterBufferTarget = 0;
      this.onTrack(e.track);
    };
    pc.onconnectionstatechange = () => {
      this.onState(pc.connectionState);
      if (pc !== this.pc || this.closing) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this.later(500);
      if (pc.connectionState === 'disconnected') this.later(1500, pc);
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitGathering(pc);
      const r = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...this.headers },
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
      });
      const answer = await r.json();
      if (!r.ok) {
        this.onState(`refused (${r.status}): ${answer.error}`);
        if (r.status === 403 || r.status === 409) return;   // retrying will not help
        throw new Error(answer.error);
      }
      this.id = answer.id;
      await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    } catch (err) {
      if (pc === this.pc && !this.closing) {
        this.onState(`server unreachable, retrying (${err.message})`);
        this.later(2000);
      }
    }
  }

  later(ms, onlyIf = null) {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (onlyIf && (onlyIf !== this.pc || onlyIf.connectionState === 'connected')) return;
      this.connect();
    }, ms);
  }

  teardown() {
    if (this.id) navigator.sendBeacon('/api/bye', JSON.stringify({ id: this.id }));
    if (this.pc) this.pc.close();
    this.pc = null;
    this.id = null;
  }

  close() {
    this.closing = true;
    clearTimeout(this.retry);
    this.teardown();
  }

  // Does the server still hold this peer? After this machine stalled (a laptop asleep, a busy
  // CPU, a process stopped) past the ICE consent window, the server has dropped it while the
  // browser may take many seconds to notice: ask, and rejoin at once.
  async checkPeer() {
    const { id, pc } = this;
    if (!id || this.checking || this.closing) return;
    this.checking = true;
    try {
      const r = await fetch(`/api/peer/${encodeURIComponent(id)}`, { cache: 'no-store' });
      if (r.status === 404 && pc === this.pc && id === this.id) {
        this.stats.rejoins = (this.stats.rejoins || 0) + 1;
        this.onState('rejoining: the server dropped this link');
        this.id = null;   // gone on the server: no bye to send
        this.connect();
      }
    } catch { /* the server is away: the connection's own state handles that */ } finally {
      this.checking = false;
    }
  }

  async poll() {
    if (!this.pc) return;
    this.checkPeer();
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        const decoded = s.framesDecoded || 0;
        const prev = this.stats.framesDecoded;
        this.stats.fps = s.framesPerSecond ?? Math.max(0, decoded - prev);
        this.stats.framesDecoded = decoded;
        this.stats.codec = s.codecId ? report.get(s.codecId)?.mimeType : undefined;
      }
    });
  }
}

export function showStats(el, stats) {
  setInterval(() => {
    const recent = (stats.latencies || []).slice(-30).map((s) => s.ms).sort((a, b) => a - b);
    const lat = recent.length ? `${Math.round(recent[recent.length >> 1])} ms` : '–';
    el.textContent = `${(stats.fps || 0).toFixed(1)} fps · glass-to-glass ${lat}`;
  }, 500);
}

// Expose a PNG grab of the page's videos by name: tests check what the page really shows.
export function exposeGrab(videos) {
  window.dancenowGrab = (which) => {
    const v = videos[which];
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0);
    return c.toDataURL('image/png');
  };
}
