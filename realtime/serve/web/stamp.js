// Reads the pixel stamp painted by dancenow/realtime/pixelstamp.py (keep the two in step):
// blocks of BLOCK px, row-major from the top-left, marker 1010, counter (12 bits),
// wall-clock ms modulo 2^22 (22 bits), 6-bit checksum (XOR of the 6-bit groups of both).
export const BLOCK = 8;
const COUNTER_BITS = 12, TIME_BITS = 22, CHECK_BITS = 6;
const NBITS = 4 + COUNTER_BITS + TIME_BITS + CHECK_BITS;
export const TIME_MOD = 2 ** TIME_BITS;

export function bandHeight(width) {
  const cols = Math.floor(width / BLOCK);
  return Math.ceil(NBITS / cols) * BLOCK;
}

function fold6(x) {
  let out = 0;
  while (x > 0) { out ^= x % 64; x = Math.floor(x / 64); }
  return out;
}

// data: RGBA bytes of the top `bandHeight(width)` rows. Returns {counter, time} or null.
export function decodeStamp(data, width) {
  const cols = Math.floor(width / BLOCK);
  const lo = BLOCK / 2 - 2, hi = BLOCK / 2 + 2;
  const bits = [];
  for (let i = 0; i < NBITS; i++) {
    const r = Math.floor(i / cols), c = i % cols;
    let sum = 0, n = 0;
    for (let y = r * BLOCK + lo; y < r * BLOCK + hi; y++) {
      for (let x = c * BLOCK + lo; x < c * BLOCK + hi; x++) {
        const k = (y * width + x) * 4;
        sum += data[k] + data[k + 1] + data[k + 2];
        n += 3;
      }
    }
    bits.push(sum / n >= 128 ? 1 : 0);
  }
  if (bits[0] !== 1 || bits[1] !== 0 || bits[2] !== 1 || bits[3] !== 0) return null;
  const value = (a, n) => bits.slice(a, a + n).reduce((v, b) => v * 2 + b, 0);
  const counter = value(4, COUNTER_BITS);
  const time = value(4 + COUNTER_BITS, TIME_BITS);
  if (value(4 + COUNTER_BITS + TIME_BITS, CHECK_BITS) !== (fold6(counter) ^ fold6(time))) return null;
  return { counter, time };
}

export function ageMs(stampedMs, nowMs) {
  return ((Math.floor(nowMs) - stampedMs) % TIME_MOD + TIME_MOD) % TIME_MOD;
}
