// soldout: the moment after a sale sells out. setup() creates a sale of
// STOCK units (default 1) and buys every unit, then many users hammer the
// purchase endpoint for DURATION seconds. Every answer must be 409 sold_out
// (or 429 rate_limited for a user over the per-user limit), and quickly: the
// sold-out answer comes from a local flag, not from Redis.
//
// Parameters: STOCK (1), USERS (5000), RATE (2000 attempts/s), DURATION (15 s),
// VUS (100), MAX_VUS (200), plus BASE_URL and ADMIN_TOKEN (lib.js). Each VU
// logs in USERS / MAX_VUS users once and cycles through them, so at most USERS
// users log in (fewer if k6 needs fewer VUs for RATE).
import exec from 'k6/execution';
import { check, fail } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { intEnv, login, buy, createSale, waitSettled, waitReady, runId, errorCode } from './lib.js';

const STOCK = Math.max(1, intEnv('STOCK', 1));
const USERS = Math.max(1, intEnv('USERS', 5000));
const RATE = Math.max(1, intEnv('RATE', 2000));
const DURATION = Math.max(1, intEnv('DURATION', 15));
const VUS = Math.max(1, intEnv('VUS', 100));
const MAX_VUS = Math.max(VUS, intEnv('MAX_VUS', 200));

// 1 when a hammering purchase was answered 409 sold_out or 429.
const soldOut = new Rate('sold_out_or_limited');
const outcomes = new Counter('purchase_outcomes');
const loginFailed = new Rate('login_failed');
const settlement = new Rate('settlement_ok');

export const options = {
  setupTimeout: '60s',
  teardownTimeout: '90s',
  scenarios: {
    hammer: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${DURATION}s`,
      preAllocatedVUs: VUS,
      maxVUs: MAX_VUS,
    },
  },
  thresholds: {
    sold_out_or_limited: ['rate==1'],
    login_failed: ['rate==0'],
    settlement_ok: ['rate==1'],
    checks: ['rate==1'],
    'http_req_duration{name:purchase}': ['p(95)<50', 'p(99)<100'],
    'purchase_outcomes{outcome:sold_out}': ['count>0'],
    'purchase_outcomes{outcome:rate_limited}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  waitReady(30);
  const item = createSale(STOCK, 0, 'k6 soldout');
  const run = runId();
  for (let i = 0; i < STOCK; i++) {
    const { token } = login(`so-owner-${run}-${i}`);
    const res = buy(token, item.id);
    if (res.status !== 202) fail(`setup: buying unit ${i + 1}/${STOCK}: HTTP ${res.status} ${res.body}`);
  }
  const { token } = login(`so-late-${run}`);
  const res = buy(token, item.id);
  if (res.status !== 409 || errorCode(res) !== 'sold_out') {
    fail(`setup: after ${STOCK} purchases the sale is not sold out: HTTP ${res.status} ${res.body}`);
  }
  console.log(`soldout: item ${item.id} sold out (${STOCK} units); hammering at ${RATE}/s for ${DURATION}s with ${USERS} users`);
  return { itemId: item.id, stock: STOCK, run };
}

// Each VU logs its users in once and reuses their tokens: the point is the
// purchase endpoint, not login.
const tokens = {};
const perVU = Math.max(1, Math.ceil(USERS / MAX_VUS));

export default function (data) {
  const k = exec.vu.iterationInScenario % perVU;
  const user = `so-${data.run}-${exec.vu.idInTest}-${k}`;
  if (!tokens[user]) {
    const { token } = login(user);
    loginFailed.add(token === null);
    if (!token) return;
    tokens[user] = token;
  }
  const res = buy(tokens[user], data.itemId);
  const code = errorCode(res);
  outcomes.add(1, { outcome: res.status === 202 ? 'accepted' : code || `http_${res.status}` });
  const ok = (res.status === 409 && code === 'sold_out') || res.status === 429;
  soldOut.add(ok);
  if (!ok) console.warn(`soldout: unexpected HTTP ${res.status} ${String(res.body).slice(0, 200)}`);
}

export function teardown(data) {
  const { settled, stats: s } = waitSettled(data.itemId, 60);
  const st = s || {};
  const results = [
    ['settled: nothing pending, consistent', settled],
    ['confirmed == stock (setup bought every unit, nobody else got one)', st.orders_confirmed === data.stock],
    ['no stock left in redis or the database', st.stock_left_redis === 0 && st.stock_left_db === 0],
    ['no failed orders', st.orders_failed === 0],
  ];
  let allOk = true;
  for (const [name, ok] of results) {
    check(null, { [`teardown: ${name}`]: () => ok === true });
    settlement.add(ok === true);
    if (ok !== true) allOk = false;
  }
  console.log(`soldout verdict: item ${data.itemId} stats ${JSON.stringify(st)}`);
  if (!allOk) fail(`soldout teardown: ${JSON.stringify(st)}`);
}
