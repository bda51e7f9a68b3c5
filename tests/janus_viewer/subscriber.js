// A viewer of what dancenow publishes over WHIP, as an audience would watch it: subscribed to the
// Janus VideoRoom's publisher with Debian's janus.js. ?janus=API_URL&room=N. State in window.sub,
// with glass-to-glass latencies when the frames carry the pixel stamp (same machine: same clock).
import { ageMs, bandHeight, decodeStamp } from './stamp.js';

const params = new URLSearchParams(location.search);
const room = Number(params.get('room'));
const video = document.getElementById('video');
const sub = { state: 'init', error: null, framesDecoded: 0, feed: null, latencies: [] };
window.sub = sub;
let handle = null;

function fail(what) {
  return (err) => { sub.error = `${what}: ${typeof err === 'string' ? err : JSON.stringify(err)}`; };
}

function subscribe() {
  handle.send({
    message: { request: 'listparticipants', room },
    success: (reply) => {
      const pub = (reply.participants || []).find((p) => p.publisher);
      if (!pub) { setTimeout(subscribe, 250); return; }
      sub.feed = pub.id;
      handle.send({ message: { request: 'join', ptype: 'subscriber', room, streams: [{ feed: pub.id }] } });
    },
    error: fail('listparticipants'),
  });
}

Janus.init({
  debug: false,
  callback: () => {
    const janus = new Janus({
      server: params.get('janus'),
      iceServers: [],
      error: fail('session'),
      success: () => janus.attach({
        plugin: 'janus.plugin.videoroom',
        error: fail('attach'),
        success: (h) => { handle = h; sub.state = 'attached'; subscribe(); },
        onmessage: (msg, jsep) => {
          if (msg.error) sub.error = msg.error;
          if (!jsep) return;
          handle.createAnswer({
            jsep,
            tracks: [{ type: 'data' }],
            success: (answer) => handle.send({ message: { request: 'start', room }, jsep: answer }),
            error: fail('answer'),
          });
        },
        onremotetrack: (track, mid, on) => {
          if (on && track.kind === 'video') {
            // the smallest jitter buffer, as the server's own viewer page asks: compares the SFU hop alone
            handle.webrtcStuff.pc.getReceivers().forEach((r) => { if ('jitterBufferTarget' in r) r.jitterBufferTarget = 0; });
            video.srcObject = new MediaStream([track]);
            sub.state = 'receiving';
          }
        },
      }),
    });
  },
});

setInterval(async () => {
  const pc = handle && handle.webrtcStuff && handle.webrtcStuff.pc;
  if (!pc) return;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') sub.framesDecoded = s.framesDecoded || 0;
  });
}, 250);

window.grab = () => {
  const c = document.createElement('canvas');
  c.width = video.videoWidth;
  c.height = video.videoHeight;
  c.getContext('2d').drawImage(video, 0, 0);
  return c.toDataURL('image/png');
};

const canvas = document.createElement('canvas');
const ctx = canvas.getContext('2d', { willReadFrequently: true });
const onFrame = () => {
  const w = video.videoWidth;
  if (w >= 8) {
    const band = bandHeight(w);
    canvas.width = w;
    canvas.height = band;
    ctx.drawImage(video, 0, 0, w, band, 0, 0, w, band);
    const stamp = decodeStamp(ctx.getImageData(0, 0, w, band).data, w);
    if (stamp && sub.latencies.length < 10000) sub.latencies.push(ageMs(stamp.time, Date.now()));
  }
  video.requestVideoFrameCallback(onFrame);
};
video.requestVideoFrameCallback(onFrame);
