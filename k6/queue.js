// queue: a waiting room in front of a hot sale (docs/QUEUE.md).
//
// setup() creates a queue item of STOCK units admitting RATE buyers per
// second, opening OPENS_IN seconds after setup. Two scenarios:
//   early  EARLY buyers join before the opening (the pre-queue);
//   late   LATE buyers join after it, one at a time in a steady stream.
// Every buyer then polls its place every POLL_MS until admitted, sold out or
// expired; admitted, it first tries to buy without the admission (must be
// 403 not_admitted), then buys with it (202), then buys again with the same
// admission (must be refused). Thresholds fail the run when:
//   - FIFO breaks: a late buyer's position ever grows between two polls
//     (someone who joined later was put ahead), counted in fifo_broken;
//   - an admission is sold twice (admission_reused) or a purchase without
//     an admission is accepted (unadmitted_sold);
//   - a unit is oversold: teardown reads the settled accounts and fails
//     unless confirmed + paid <= stock_total, and, from k6's REST API, that
//     the last early buyer was admitted no later than the first late one
//     plus one poll and refresh period (early_after_late).
// Parameters: STOCK (1500), RATE (200), EARLY (1000), LATE (1000),
// OPENS_IN (20 s), POLL_MS (500), plus BASE_URL and ADMIN_TOKEN (lib.js).
import exec from 'k6/execution';
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { BASE_URL, intEnv, login, buy, buyWithTicket, createSale, waitSettled, waitReady, runId, errorCode, json, finalCount } from './lib.js';

const STOCK = intEnv('STOCK', 1500);
const RATE = intEnv('RATE', 200);
const EARLY = intEnv('EARLY', 1000);
const LATE = intEnv('LATE', 1000);
const OPENS_IN = intEnv('OPENS_IN', 20);
const POLL_MS = intEnv('POLL_MS', 500);

const fifoBroken = new Counter('fifo_broken');
const admissionReused = new Counter('admission_reused');
const unadmittedSold = new Counter('unadmitted_sold');
const accepted = new Counter('accepted');
const earlyAdmit = new Trend('early_admit_ms');
const lateAdmit = new Trend('late_admit_ms');

export const options = {
  setupTimeout: '60s',
  teardownTimeout: '180s',
  scenarios: {
    // One VU per early buyer: each joins at once, then waits for the opening.
    early: { executor: 'per-vu-iterations', vus: Math.max(EARLY, 1), iterations: 1, exec: 'early', maxDuration: '10m' },
    late: {
      executor: 'constant-arrival-rate', rate: Math.max(1, Math.floor(LATE / 10)), timeUnit: '1s', duration: '10s',
      preAllocatedVUs: 300, maxVUs: 1500, exec: 'late', startTime: `${OPENS_IN + 2}s`,
    },
  },
  thresholds: {
    fifo_broken: ['count==0'],
    admission_reused: ['count==0'],
    unadmitted_sold: ['count==0'],
  },
};

export function setup() {
  waitReady();
  const item = createSale(STOCK, OPENS_IN, 'k6 queue', { protection: 'queue', admit_per_second: RATE });
  return { item: item.id, run: runId(), t0: Date.now() };
}

const queueURL = (item) => `${BASE_URL}/api/v1/items/${item}/queue`;

// follow polls until the buyer's line ends for them, checks positions
// never grow once placed, and on admission buys as described above.
function follow(data, token, isLate) {
  const headers = { Authorization: `Bearer ${token}` };
  let last = Infinity;
  for (;;) {
    const r = http.get(queueURL(data.item), { headers, tags: { name: 'queue_poll' } });
    const b = r.status === 200 ? json(r) : null;
    if (!b) {
      sleep(POLL_MS / 1000);
      continue;
    }
    if (b.state === 'waiting') {
      if (isLate && b.position > last) fifoBroken.add(1);
      if (isLate || Date.now() > data.t0 + OPENS_IN * 1000 + 1000) last = b.position;
      sleep(POLL_MS / 1000);
      continue;
    }
    if (b.state !== 'admitted') return; // sold_out, expired, ended
    (isLate ? lateAdmit : earlyAdmit).add(Date.now() - data.t0);
    const bare = buy(token, data.item);
    if (bare.status === 202) unadmittedSold.add(1);
    check(bare, { 'no admission: 403 not_admitted': (x) => x.status === 403 && errorCode(x) === 'not_admitted' });
    let res;
    do {
      res = buyWithTicket(token, data.item, b.ticket);
      if (res.status === 429 || res.status === 503) sleep(0.2);
    } while (res.status === 429 || res.status === 503);
    if (res.status === 202) accepted.add(1);
    const again = buyWithTicket(token, data.item, b.ticket);
    if (again.status === 202) admissionReused.add(1);
    return;
  }
}

function joinAndFollow(data, prefix, isLate) {
  const user = `${prefix}-${data.run}-${exec.scenario.iterationInTest}`;
  const { token } = login(user);
  if (!token) fail(`login ${user}`);
  const r = http.post(queueURL(data.item), null, { headers: { Authorization: `Bearer ${token}` }, tags: { name: 'queue_join' } });
  if (!check(r, { 'join: 202': (x) => x.status === 202 })) return;
  if (!isLate) {
    // Pre-queue buyers wait for the opening before polling, as the page does.
    const wait = data.t0 + OPENS_IN * 1000 - Date.now();
    if (wait > 0) sleep(wait / 1000);
  }
  follow(data, token, isLate);
}

export function early(data) {
  if (exec.scenario.iterationInTest < EARLY) joinAndFollow(data, 'early', false);
}

export function late(data) {
  if (exec.scenario.iterationInTest < LATE) joinAndFollow(data, 'late', true);
}

// trendValue reads one field of a Trend from k6's REST API, or null.
function trendValue(metric, field) {
  const res = http.get(`${__ENV.RUNNER_API || 'http://127.0.0.1:6565'}/v1/metrics/${metric}`, { responseCallback: http.expectedStatuses(200, 404) });
  const b = res.status === 200 ? json(res) : null;
  const s = b && b.data && b.data.attributes && b.data.attributes.sample;
  return s && typeof s[field] === 'number' ? s[field] : null;
}

export function teardown(data) {
  const settled = waitSettled(data.item, 120);
  if (!settled.settled) fail(`not settled: ${JSON.stringify(settled.stats)}`);
  const s = settled.stats;
  const held = s.orders_confirmed + (s.orders_paid || 0);
  if (held > s.stock_total) fail(`oversold: ${held} units held of ${s.stock_total}`);
  const got = finalCount('accepted');
  if (got !== null && got > s.stock_total) fail(`oversold: ${got} purchases accepted for ${s.stock_total} units`);
  const lastEarly = trendValue('early_admit_ms', 'max');
  const firstLate = trendValue('late_admit_ms', 'min');
  // One poll period plus one refresh: how late a client can see its admission.
  if (lastEarly !== null && firstLate !== null && lastEarly > firstLate + POLL_MS + 250) {
    fail(`early_after_late: the last early buyer was admitted at ${lastEarly} ms, after the first late one at ${firstLate} ms`);
  }
  console.log(`queue: ${held} units held of ${s.stock_total}; admissions ${lastEarly === null ? '-' : 'early last at ' + Math.round(lastEarly) + ' ms'}, ${firstLate === null ? '-' : 'late first at ' + Math.round(firstLate) + ' ms'}`);
}
