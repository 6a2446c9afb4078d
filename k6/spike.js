// spike: thousands of distinct users rush one item within seconds.
//
// setup() creates one sale of STOCK units through the admin API. Two scenarios
// then run against it:
//   repeat_buyers  from t=0, before the rush: a few users buy and immediately
//                  try again; the retries must be refused (409
//                  already_purchased naming their order, or sold_out).
//   spike          from t=1s: a ramping arrival rate up to RATE new users per
//                  second, each logging in and buying once, about USERS in
//                  all. Most are refused: sold out, or shed (429/503).
// Every 202 is counted in the `accepted` counter. A fraction PAY_FRACTION of
// the spike's winners then wait for their order to be confirmed and pay for
// it (counted in `paid`); the rest leave it confirmed, holding its unit
// until pay_by. teardown() waits until the worker has settled every order,
// then fails the run unless (held = confirmed + paid):
//   - the server's accounts are consistent (openapi.yaml, admin stats),
//   - nothing was oversold: held <= stock_total,
//   - stock_total == stock_left_redis + pending + confirmed + paid, and the
//     same with stock_left_db: failed, cancelled and expired orders' units
//     are back in both,
//   - every payment the clients saw is a paid order: orders_paid == paid,
//   - every 202 the clients saw is a decided order: accepted == confirmed +
//     paid + cancelled + expired, and failed == 0 (no accepted order lost,
//     no order nobody was told of). With the default 15m payment window
//     nothing expires during a run.
//   - nobody was told sold_out while units were left: if any purchase was
//     answered sold_out, stock_left_redis is 0 at the end.
// The counters are read from k6's REST API (see lib.js finalCount): teardown
// cannot see the scripts' metrics otherwise, and handleSummary() cannot fail
// a run. So run k6 with its REST API on (`--address`; k6/run.sh does).
//
// The sale is protected (PROTECTION, default pow: docs/FAIRNESS.md), so
// every purchase first fetches a ticket the way a real client does: get a
// challenge, solve it here (k6's SHA-256, about 90k hashes/s per VU on a
// shared 2-core machine, so k6/run.sh starts the server with low difficulty
// bounds), send the proof, and buy with the ticket; a retry fetches a fresh
// one, since the ticket was used. PROTECTION=none buys without tickets, as
// before fair sales existed.
//
// Parameters: PROTECTION (pow; ticket or none), STOCK (1000), USERS (20000), RATE (3000 users/s at the peak),
// VUS (preallocated, 300), MAX_VUS (1200), REPEAT_RATE (20 users/s),
// SETTLE_TIMEOUT (90 s), PAY_FRACTION (0.5: the share of spike winners who
// pay; 0 pays none, 1 pays all), plus BASE_URL and ADMIN_TOKEN (lib.js).
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import {
  PURCHASE_STATUSES, intEnv, login, buy, buyWithTicket, fetchTicket, createSale, waitSettled, waitReady,
  runId, errorCode, json, finalCount, order, pay,
} from './lib.js';

const PROTECTION = __ENV.PROTECTION || 'pow';
if (!['none', 'ticket', 'pow'].includes(PROTECTION)) throw new Error(`PROTECTION=${PROTECTION}: want none, ticket or pow`);

const STOCK = intEnv('STOCK', 1000);
const USERS = intEnv('USERS', 20000);
const RATE = Math.max(1, intEnv('RATE', 3000));
const VUS = intEnv('VUS', 300);
const MAX_VUS = Math.max(VUS, intEnv('MAX_VUS', 1200));
const REPEAT_RATE = intEnv('REPEAT_RATE', 20);
const SETTLE_TIMEOUT = intEnv('SETTLE_TIMEOUT', 90);
const PAY_FRACTION = Math.min(1, Math.max(0, parseFloat(__ENV.PAY_FRACTION === undefined ? '0.5' : __ENV.PAY_FRACTION) || 0));
// How long a winner waits for the worker to confirm their order before
// giving up on paying for it.
const CONFIRM_WAIT_SEC = 20;

// Every purchase answered 202, whatever the scenario.
const accepted = new Counter('accepted');
// Every purchase answered 409 sold_out.
const soldOutAnswers = new Counter('sold_out_answers');
// Purchase answers by outcome: "accepted" or the API's error code.
const outcomes = new Counter('purchase_outcomes');
// 1 for an answer outside the contract: a purchase status other than
// 202/409/429/503/403, a 409 with an unknown code, a 202 without an order,
// already_purchased for a first-time buyer, or a failed login.
const unexpected = new Rate('unexpected_status');
// Payments answered 200 paid.
const paidCounter = new Counter('paid');
// Retries by users holding an order that were answered already_purchased.
const alreadyPurchased = new Counter('repeat_already_purchased');
// SHA-256 hashes the clients computed to solve challenges.
const powHashes = new Counter('pow_hashes');
// One sample per teardown check; a threshold requires all to pass.
const settlement = new Rate('settlement_ok');

// The spike's stages: 2 s up to RATE, a plateau, 5 s back down to 0. The
// plateau is sized so the arrivals add up to about USERS:
// RATE * (1 + plateau + 2.5) = USERS.
const plateauMs = Math.max(1000, Math.round((USERS / RATE - 3.5) * 1000));

export const options = {
  setupTimeout: '60s',
  teardownTimeout: `${SETTLE_TIMEOUT + 30}s`,
  scenarios: {
    repeat_buyers: {
      executor: 'constant-arrival-rate',
      exec: 'repeatBuyer',
      rate: REPEAT_RATE,
      timeUnit: '1s',
      duration: '3s',
      preAllocatedVUs: Math.max(5, REPEAT_RATE),
      maxVUs: Math.max(10, REPEAT_RATE * 3),
      startTime: '0s',
    },
    spike: {
      executor: 'ramping-arrival-rate',
      exec: 'spikeBuyer',
      startRate: 0,
      timeUnit: '1s',
      preAllocatedVUs: VUS,
      maxVUs: MAX_VUS,
      startTime: '1s',
      stages: [
        { target: RATE, duration: '2s' },
        { target: RATE, duration: `${plateauMs}ms` },
        { target: 0, duration: '5s' },
      ],
    },
  },
  thresholds: {
    // Latency on a 2-core machine that also runs k6 and (with run.sh) the
    // whole system with its embedded backends.
    'http_req_duration{name:purchase}': ['p(95)<300', 'p(99)<500'],
    'http_req_duration{name:login}': ['p(99)<500'],
    // No threshold here can fail; it makes the summary list the payments.
    paid: ['count>=0'],
    pow_hashes: ['count>=0'],
    unexpected_status: ['rate==0'],
    settlement_ok: ['rate==1'],
    repeat_already_purchased: ['count>0'],
    // No threshold here can fail; these make the summary list each outcome.
    'purchase_outcomes{outcome:accepted}': ['count>=0'],
    'purchase_outcomes{outcome:sold_out}': ['count>=0'],
    'purchase_outcomes{outcome:already_purchased}': ['count>=0'],
    'purchase_outcomes{outcome:rate_limited}': ['count>=0'],
    'purchase_outcomes{outcome:unavailable}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  waitReady(30);
  const item = createSale(STOCK, 0, 'k6 spike', { protection: PROTECTION });
  console.log(`spike: item ${item.id} (protection ${item.protection}) with ${STOCK} units; up to ${RATE} users/s, ~${USERS} users, plateau ${plateauMs} ms`);
  return { itemId: item.id, stock: STOCK, run: runId() };
}

// purchase buys once, fetching a fresh ticket first when the sale is
// protected. It returns the purchase response, or null (after recording an
// unexpected answer) when the ticket step failed.
function purchase(token, itemId) {
  if (PROTECTION === 'none') return buy(token, itemId);
  const t = fetchTicket(token, itemId, PROTECTION);
  if (t.hashes > 0) powHashes.add(t.hashes);
  if (!t.ticket) {
    unexpectedAnswer('ticket step', t.res);
    return null;
  }
  return buyWithTicket(token, itemId, t.ticket);
}

let warned = 0;
function unexpectedAnswer(what, res) {
  unexpected.add(true);
  if (warned++ < 5) console.warn(`unexpected ${what}: HTTP ${res.status} ${String(res.body).slice(0, 200)}`);
}

// judge records one purchase answer. firstTime: the user holds no order yet.
function judge(res, firstTime) {
  const code = errorCode(res);
  outcomes.add(1, { outcome: res.status === 202 ? 'accepted' : code || `http_${res.status}` });
  let ok = PURCHASE_STATUSES.includes(res.status);
  if (res.status === 202) {
    accepted.add(1);
    const b = json(res) || {};
    ok = typeof b.order_id === 'string' && b.order_id !== '' && b.status === 'queued';
  } else if (res.status === 409) {
    if (code === 'sold_out') soldOutAnswers.add(1);
    ok = code === 'sold_out' || (code === 'already_purchased' && !firstTime);
  } else if (res.status === 429 || res.status === 503) {
    ok = res.headers['Retry-After'] !== undefined;
  }
  if (ok) unexpected.add(false);
  else unexpectedAnswer('purchase answer', res);
  return ok;
}

// spikeBuyer is one new user: log in, buy once.
export function spikeBuyer(data) {
  const user = `s-${data.run}-${exec.scenario.iterationInTest}`;
  const { token, res } = login(user);
  if (!token) {
    unexpectedAnswer('login', res);
    return;
  }
  const bought = purchase(token, data.itemId);
  if (!bought || !judge(bought, true) || bought.status !== 202) return;
  // Which winners pay is spread evenly over the run, not left to chance, so
  // the paid count is predictable.
  const n = exec.scenario.iterationInTest;
  if (Math.floor((n + 1) * PAY_FRACTION) === Math.floor(n * PAY_FRACTION)) return;
  payWhenConfirmed(token, (json(bought) || {}).order_id);
}

// payWhenConfirmed waits for the order to be confirmed, then pays for it.
function payWhenConfirmed(token, orderId) {
  const until = Date.now() + CONFIRM_WAIT_SEC * 1000;
  while (Date.now() < until) {
    const { order: o } = order(token, orderId);
    if (o && o.status === 'confirmed') break;
    if (o && o.status !== 'queued') return;
    sleep(0.25);
  }
  const res = pay(token, orderId, `k6-${orderId}`);
  const b = json(res) || {};
  const ok = res.status === 200 && b.status === 'paid' && b.payment_ref === `k6-${orderId}`;
  if (ok) {
    paidCounter.add(1);
    unexpected.add(false);
  } else if (!(res.status === 409 && errorCode(res) === 'order_pending') && res.status !== 503) {
    unexpectedAnswer('payment', res);
  }
}

// repeatBuyer buys, then tries again three times: a user who holds an order
// must never get a second one.
export function repeatBuyer(data) {
  const user = `r-${data.run}-${exec.scenario.iterationInTest}`;
  const { token, res } = login(user);
  if (!token) {
    unexpectedAnswer('login', res);
    return;
  }
  const first = purchase(token, data.itemId);
  if (!first) return;
  judge(first, true);
  if (first.status !== 202) return;
  const orderId = (json(first) || {}).order_id;
  for (let i = 0; i < 3; i++) {
    sleep(0.1);
    const again = purchase(token, data.itemId);
    if (!again) continue;
    const code = errorCode(again);
    judge(again, false);
    check(again, {
      'repeat: never a second 202': (r) => r.status !== 202,
      'repeat: already_purchased names the held order': (r) => code !== 'already_purchased' || (json(r) || {}).order_id === orderId,
    });
    if (code === 'already_purchased') alreadyPurchased.add(1);
  }
}

export function teardown(data) {
  const { settled, stats: s, waitedSec } = waitSettled(data.itemId, SETTLE_TIMEOUT);
  const acc = finalCount('accepted');
  const soldOut = finalCount('sold_out_answers');
  const st = s || {};
  const paidSeen = finalCount('paid');
  const held = st.orders_confirmed + st.orders_paid;
  const results = [
    [`settled within ${SETTLE_TIMEOUT}s: nothing pending, consistent`, settled],
    ['no oversell: confirmed + paid <= stock_total', held <= st.stock_total],
    ['stock_total is what setup created', st.stock_total === data.stock],
    ['stock_total == stock_left_redis + pending + confirmed + paid',
      st.stock_total === st.stock_left_redis + st.orders_pending + held],
    ['stock_total == stock_left_db + confirmed + paid', st.stock_total === st.stock_left_db + held],
    ['k6 REST API gave the accepted and paid counts', acc !== null && paidSeen !== null],
    ['every payment answered paid is a paid order: orders_paid == paid', st.orders_paid === paidSeen],
    ['no accepted order failed: failed == 0', st.orders_failed === 0],
    ['every 202 is a decided order: accepted == confirmed + paid + cancelled + expired',
      acc !== null && held + st.orders_cancelled + st.orders_expired === acc],
    ['no false sold_out: sold_out answered only once stock_left_redis == 0',
      soldOut !== null && (soldOut === 0 || st.stock_left_redis === 0)],
  ];
  let allOk = true;
  for (const [name, ok] of results) {
    check(null, { [`teardown: ${name}`]: () => ok === true });
    settlement.add(ok === true);
    if (ok !== true) allOk = false;
  }
  const line = `spike verdict: item ${data.itemId} accepted(202)=${acc} sold_out_answers=${soldOut} confirmed=${st.orders_confirmed} ` +
    `paid=${st.orders_paid} paid_seen=${paidSeen} cancelled=${st.orders_cancelled} expired=${st.orders_expired} failed=${st.orders_failed} pending=${st.orders_pending} stock_total=${st.stock_total} ` +
    `stock_left_redis=${st.stock_left_redis} stock_left_db=${st.stock_left_db} consistent=${st.consistent} ` +
    `settled_after=${waitedSec.toFixed(1)}s`;
  console.log(line);
  if (!allOk) {
    const failed = results.filter(([, ok]) => ok !== true).map(([n]) => n);
    fail(`${line}\nFAILED: ${failed.join('; ')}${acc === null ? ' (k6 REST API unreachable: run k6 with --address 127.0.0.1:6565)' : ''}`);
  }
}
