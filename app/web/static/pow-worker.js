// Proof-of-work solver for the sale page, run as a Web Worker so the page
// stays responsive while it hashes (docs/FAIRNESS.md).
//
// In:  {challenge: string, difficulty: number}
// Out: {type: "progress", hashes, expected} every PROGRESS_EVERY hashes, then
//      {type: "done", nonce: string, hashes}
//
// It finds the smallest decimal nonce such that SHA-256(challenge + nonce)
// has at least `difficulty` leading zero bits, exactly as the server checks
// it (fairness.LeadingZeroBits). SHA-256 is written out here rather than
// taken from crypto.subtle: subtle.digest is asynchronous (one promise per
// hash, several times slower for 60-byte inputs) and exists only in secure
// contexts, so a shop served over plain http on a LAN would have none.
"use strict";

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Int32Array(64);
const H = new Int32Array(8);

// sha256First returns the first 32-bit word of SHA-256(bytes[0:len]) in
// H[0] (and the rest of the digest in H[1..7]). buf must have room for the
// padding: a multiple of 64 bytes at least len + 9.
function sha256(buf, len) {
  const blocks = ((len + 8) >> 6) + 1;
  buf.fill(0, len, blocks * 64);
  buf[len] = 0x80;
  const bitLen = len * 8;
  const end = blocks * 64;
  buf[end - 4] = (bitLen >>> 24) & 0xff;
  buf[end - 3] = (bitLen >>> 16) & 0xff;
  buf[end - 2] = (bitLen >>> 8) & 0xff;
  buf[end - 1] = bitLen & 0xff;
  H[0] = 0x6a09e667; H[1] = 0xbb67ae85; H[2] = 0x3c6ef372; H[3] = 0xa54ff53a;
  H[4] = 0x510e527f; H[5] = 0x9b05688c; H[6] = 0x1f83d9ab; H[7] = 0x5be0cd19;
  for (let b = 0; b < blocks; b++) {
    const o = b * 64;
    for (let i = 0; i < 16; i++) {
      const j = o + i * 4;
      W[i] = (buf[j] << 24) | (buf[j + 1] << 16) | (buf[j + 2] << 8) | buf[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const w15 = W[i - 15], w2 = W[i - 2];
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let a = H[0], bb = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
    }
    H[0] = (H[0] + a) | 0; H[1] = (H[1] + bb) | 0; H[2] = (H[2] + c) | 0; H[3] = (H[3] + d) | 0;
    H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + h) | 0;
  }
}

// leadingZeroBits counts the digest's leading zero bits from H.
function leadingZeroBits() {
  let n = 0;
  for (let i = 0; i < 8; i++) {
    if (H[i] !== 0) return n + Math.clz32(H[i]);
    n += 32;
  }
  return n;
}

const PROGRESS_EVERY = 1 << 14;

function solve(challenge, difficulty) {
  const prefix = new TextEncoder().encode(challenge);
  const buf = new Uint8Array(Math.ceil((prefix.length + 20 + 9) / 64) * 64 + 64);
  buf.set(prefix);
  const expected = Math.pow(2, difficulty);
  for (let n = 0; ; n++) {
    // The nonce's decimal digits follow the challenge.
    const digits = String(n);
    let len = prefix.length;
    for (let i = 0; i < digits.length; i++) buf[len++] = digits.charCodeAt(i);
    sha256(buf, len);
    if (leadingZeroBits() >= difficulty) return { nonce: digits, hashes: n + 1 };
    if ((n + 1) % PROGRESS_EVERY === 0) postMessage({ type: "progress", hashes: n + 1, expected });
  }
}

onmessage = (ev) => {
  const { challenge, difficulty } = ev.data || {};
  if (typeof challenge !== "string" || !(difficulty >= 0)) {
    postMessage({ type: "error", message: "bad challenge" });
    return;
  }
  const out = solve(challenge, difficulty);
  postMessage({ type: "done", nonce: out.nonce, hashes: out.hashes });
};
