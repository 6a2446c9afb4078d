// Shared helpers of the seckill k6 scripts. Every request goes through the
// public API described in app/httpapi/openapi.yaml.
//
// Parameters (environment, `k6 run -e NAME=value` or exported):
//   BASE_URL     the API, default http://127.0.0.1:8080 (k6/run.sh sets it)
//   ADMIN_TOKEN  the admin bearer token (SECKILL_ADMIN_TOKEN of the server)
//   STOCK        units of the sale a script creates
//   USERS        distinct users a script uses
//   RATE         peak purchase attempts (iterations) per second
//   RUNNER_API   k6's own REST API, default http://127.0.0.1:6565; spike.js
//                reads its own counters there in teardown (see finalCount)
import http from 'k6/http';
import crypto from 'k6/crypto';
import { sleep } from 'k6';

function intEnv(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = parseInt(v, 10);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: want a non-negative integer`);
  return n;
}

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || '';
export const RUNNER_API = (__ENV.RUNNER_API || 'http://127.0.0.1:6565').replace(/\/+$/, '');
export { intEnv };

// Statuses a purchase may legitimately answer during a sale: accepted,
// sold out / already purchased, rate limited, overloaded, outside the window,
// and 504 outcome_unknown (the reservation was sent and no answer came back:
// the next step is the orders route, see myOrders).
export const PURCHASE_STATUSES = [202, 409, 429, 503, 403, 504];

const JSON_HEADERS = { 'Content-Type': 'application/json' };

// Requests whose non-2xx answers are the point of the test are not counted
// in http_req_failed; unexpected ones are counted by the scripts themselves.
const purchaseExpected = http.expectedStatuses(...PURCHASE_STATUSES);

function adminHeaders() {
  if (!ADMIN_TOKEN) throw new Error('ADMIN_TOKEN is not set (the server\'s SECKILL_ADMIN_TOKEN)');
  return { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' };
}

// json returns the parsed body, or null if there is none or it is not JSON.
export function json(res) {
  try {
    return res.json();
  } catch (_) {
    return null;
  }
}

// errorCode is the API's error code ("sold_out", ...), or "" for none.
export function errorCode(res) {
  const b = json(res);
  return b && typeof b.error === 'string' ? b.error : '';
}

// runId is a short id that makes user names unique to one run. Call it in
// setup() and pass it on: init code runs once per VU, so a value computed
// there would differ between VUs.
export function runId() {
  return Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36);
}

// login returns a user token, or null (with the response) if login failed.
export function login(user) {
  const res = http.post(`${BASE_URL}/api/v1/login`, JSON.stringify({ user_id: user }), {
    headers: JSON_HEADERS,
    tags: { name: 'login' },
  });
  const b = res.status === 200 ? json(res) : null;
  return { token: b && b.token ? b.token : null, res };
}

// buy attempts to buy one unit of itemId; the response is the caller's to judge.
export function buy(token, itemId) {
  return http.post(`${BASE_URL}/api/v1/items/${itemId}/purchase`, null, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: 'purchase' },
    responseCallback: purchaseExpected,
  });
}

// buyWithTicket buys with a purchase ticket in the body (a protected item).
export function buyWithTicket(token, itemId, ticket, tags = {}) {
  return http.post(`${BASE_URL}/api/v1/items/${itemId}/purchase`, JSON.stringify({ ticket }), {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    tags: Object.assign({ name: 'purchase' }, tags),
    responseCallback: purchaseExpected,
  });
}

// leadingZeroBits counts the leading zero bits of a hex digest.
function leadingZeroBits(hex) {
  let n = 0;
  for (let i = 0; i < hex.length; i++) {
    const v = parseInt(hex[i], 16);
    if (v === 0) {
      n += 4;
      continue;
    }
    return n + (v >= 8 ? 0 : v >= 4 ? 1 : v >= 2 ? 2 : 3);
  }
  return n;
}

// solve finds the smallest decimal nonce such that SHA-256(challenge +
// nonce) has at least difficulty leading zero bits, as the server checks it
// (app/fairness) and the sale page's worker does. It returns
// { nonce, hashes }.
export function solve(challenge, difficulty) {
  for (let n = 0; ; n++) {
    const nonce = String(n);
    if (leadingZeroBits(crypto.sha256(challenge + nonce, 'hex')) >= difficulty) {
      return { nonce, hashes: n + 1 };
    }
  }
}

const fairExpected = http.expectedStatuses(200, 400, 403, 429, 503);

// fetchTicket gets a purchase ticket the way a real client does: for a pow
// item it fetches a challenge, solves it, and sends the proof; for a ticket
// item it just asks. It returns { ticket, hashes, difficulty, res } (ticket
// null, with the failing response in res, if a step was refused).
export function fetchTicket(token, itemId, protection, tags = {}) {
  const auth = { Authorization: `Bearer ${token}` };
  let body = null;
  let hashes = 0;
  let difficulty = 0;
  if (protection === 'pow') {
    const ch = http.get(`${BASE_URL}/api/v1/items/${itemId}/challenge`, {
      headers: auth, tags: Object.assign({ name: 'challenge' }, tags), responseCallback: fairExpected,
    });
    const c = ch.status === 200 ? json(ch) : null;
    if (!c || !c.challenge) return { ticket: null, hashes, difficulty, res: ch };
    difficulty = c.difficulty;
    const s = solve(c.challenge, c.difficulty);
    hashes = s.hashes;
    body = JSON.stringify({ challenge: c.challenge, nonce: s.nonce });
  }
  const res = http.post(`${BASE_URL}/api/v1/items/${itemId}/ticket`, body, {
    headers: Object.assign({ 'Content-Type': 'application/json' }, auth),
    tags: Object.assign({ name: 'ticket' }, tags),
    responseCallback: fairExpected,
  });
  const t = res.status === 200 ? json(res) : null;
  return { ticket: t && t.ticket ? t.ticket : null, hashes, difficulty, res };
}

// order returns the caller's order (status queued, confirmed, paid,
// cancelled, expired or failed), or null with the response.
export function order(token, orderId) {
  const res = http.get(`${BASE_URL}/api/v1/orders/${orderId}`, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: 'order' },
  });
  return { order: res.status === 200 ? json(res) : null, res };
}

// myOrders returns the caller's orders for itemId (GET
// /api/v1/items/{id}/orders, newest first, the queued one included), or
// null with the response when the shop could not answer. It is the next
// step after 504 outcome_unknown.
export function myOrders(token, itemId) {
  const res = http.get(`${BASE_URL}/api/v1/items/${itemId}/orders`, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: 'orders' },
    responseCallback: http.expectedStatuses(200, 503),
  });
  const b = res.status === 200 ? json(res) : null;
  return { orders: b && Array.isArray(b.orders) ? b.orders : null, res };
}

// LIVE_STATUSES are the statuses of an order that holds its unit.
export const LIVE_STATUSES = ['queued', 'confirmed', 'paid'];

// resolveUnknown follows a 504 outcome_unknown as the API documents: it
// asks the orders route until the order the 504 named (orderId) shows up
// ('found' while it holds its unit, 'failed' if it ended failed), or until
// waitSec has passed with the shop answering and no such order ('none': a
// sent reservation lands, or is given up, within go-redis's read timeout
// and retries, 2 s x 4). 'unresolved': the shop never answered.
export function resolveUnknown(token, itemId, orderId, waitSec = 10) {
  const until = Date.now() + waitSec * 1000;
  let answered = false;
  for (;;) {
    const { orders } = myOrders(token, itemId);
    if (orders) {
      answered = true;
      const o = orders.find((x) => x.order_id === orderId);
      if (o && LIVE_STATUSES.includes(o.status)) return 'found';
      if (o) return 'failed';
    }
    if (Date.now() >= until) return answered ? 'none' : 'unresolved';
    sleep(0.5);
  }
}

// metric reads one counter or gauge from the server's Prometheus /metrics
// (no labels), or null if it is not there.
export function serverMetric(name) {
  const res = http.get(`${BASE_URL}/metrics`, { tags: { name: 'metrics' }, responseCallback: http.expectedStatuses(200) });
  if (res.status !== 200) return null;
  const m = String(res.body).match(new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

// pay pays for the caller's confirmed order with the simulated provider.
export function pay(token, orderId, ref) {
  return http.post(`${BASE_URL}/api/v1/orders/${orderId}/pay`, JSON.stringify({ payment_ref: ref }), {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    tags: { name: 'pay' },
    responseCallback: http.expectedStatuses(200, 409, 503),
  });
}

// createSale creates an item with stock units through the admin API. The sale
// opens startsInSec from now (<= 0: already open; a few seconds in the past so
// clock skew between k6 and the server cannot make it "not started") and
// lasts an hour. It throws if the API refuses.
export function createSale(stock, startsInSec = 0, name = 'k6 sale', extra = {}) {
  const now = Date.now();
  const starts = startsInSec > 0 ? now + startsInSec * 1000 : now - 5000;
  const body = {
    name: `${name} ${new Date(now).toISOString()}`,
    description: 'created by a k6 script',
    price_cents: 1999,
    stock,
    starts_at: new Date(starts).toISOString(),
    ends_at: new Date(now + 3600 * 1000).toISOString(),
  };
  // protection, purchase_rate: as the admin API takes them.
  Object.assign(body, extra);
  const res = http.post(`${BASE_URL}/api/v1/admin/items`, JSON.stringify(body), {
    headers: adminHeaders(),
    tags: { name: 'admin_create' },
  });
  const item = res.status === 201 ? json(res) : null;
  if (!item || !item.id) {
    throw new Error(`create sale: HTTP ${res.status} ${res.body}`);
  }
  return item;
}

// stats returns the admin stock accounting of itemId; it throws on failure.
export function stats(itemId) {
  const res = http.get(`${BASE_URL}/api/v1/admin/items/${itemId}/stats`, {
    headers: adminHeaders(),
    tags: { name: 'admin_stats' },
  });
  const s = res.status === 200 ? json(res) : null;
  if (!s) throw new Error(`stats of item ${itemId}: HTTP ${res.status} ${res.body}`);
  return s;
}

// waitSettled polls stats until no order is pending and the accounts are
// consistent, or timeoutSec passes. It returns { settled, stats, waitedSec }.
export function waitSettled(itemId, timeoutSec = 60) {
  const start = Date.now();
  let s = null;
  for (;;) {
    try {
      s = stats(itemId);
    } catch (e) {
      console.warn(`waitSettled: ${e}`);
    }
    const waitedSec = (Date.now() - start) / 1000;
    if (s && s.orders_pending === 0 && s.consistent === true) {
      return { settled: true, stats: s, waitedSec };
    }
    if (waitedSec >= timeoutSec) {
      return { settled: false, stats: s, waitedSec };
    }
    sleep(0.5);
  }
}

// waitReady polls /readyz until it answers 200 or timeoutSec passes.
export function waitReady(timeoutSec = 30) {
  const start = Date.now();
  for (;;) {
    const res = http.get(`${BASE_URL}/readyz`, { tags: { name: 'readyz' }, responseCallback: http.expectedStatuses(200, 503) });
    if (res.status === 200) return true;
    if ((Date.now() - start) / 1000 >= timeoutSec) {
      throw new Error(`${BASE_URL}/readyz did not answer 200 within ${timeoutSec}s (last: HTTP ${res.status} ${res.body})`);
    }
    sleep(0.5);
  }
}

// counterValue reads one Counter from k6's REST API: its count, "missing"
// (k6 has no samples of it yet), or null if the API did not answer.
function counterValue(metric) {
  const res = http.get(`${RUNNER_API}/v1/metrics/${metric}`, {
    tags: { name: 'k6_rest_api' },
    responseCallback: http.expectedStatuses(200, 404),
    timeout: '5s',
  });
  if (res.status === 404) return 'missing';
  if (res.status !== 200) return null;
  const b = json(res);
  const sample = b && b.data && b.data.attributes && b.data.attributes.sample;
  return sample && typeof sample.count === 'number' ? sample.count : null;
}

// trendValue reads one statistic ("med", "p(95)", ...) of a Trend or of a
// submetric that a threshold defines (e.g. "http_req_duration{name:login}"),
// in ms, from k6's REST API; null if it is not there.
export function trendValue(metric, stat) {
  const res = http.get(`${RUNNER_API}/v1/metrics/${encodeURIComponent(metric)}`, {
    tags: { name: 'k6_rest_api' },
    responseCallback: http.expectedStatuses(200, 404),
    timeout: '5s',
  });
  const b = res.status === 200 ? json(res) : null;
  const sample = b && b.data && b.data.attributes && b.data.attributes.sample;
  return sample && typeof sample[stat] === 'number' ? sample[stat] : null;
}

// finalCount returns the final value of a Counter, read from k6's own REST
// API (the `--address` server; on by default in k6 v1 at localhost:6565, off
// by default from k6 v2, so k6/run.sh and docker-compose.yml pass --address).
// teardown() cannot see the scripts' metrics and handleSummary() cannot fail
// a run, so this is how teardown compares what clients were told (202s) with
// what the server settled. Samples reach the API a moment after they are
// emitted, so it reads until two reads a second apart agree; a counter still
// without samples then was never incremented. Returns null if the REST API
// is not reachable or the value does not settle within timeoutSec.
export function finalCount(metric, timeoutSec = 15) {
  const deadline = Date.now() + timeoutSec * 1000;
  let last;
  while (Date.now() < deadline) {
    const v = counterValue(metric);
    if (v === null) return null;
    if (v === last) return v === 'missing' ? 0 : v;
    last = v;
    sleep(1);
  }
  return null;
}
