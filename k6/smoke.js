// smoke: one user logs in, buys from a sale that setup() creates, and polls
// the order until the worker has confirmed it. Then the same user tries again
// (409 already_purchased naming the same order) and teardown checks the
// sale's stock accounting. Every check must pass.
//
//   make k6-smoke                       # starts the system itself
//   BASE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=... k6/run.sh smoke.js
import { check, fail, sleep } from 'k6';
import { Rate } from 'k6/metrics';
import { login, buy, order, createSale, waitSettled, waitReady, runId, errorCode, json } from './lib.js';

const STOCK = 5;

// settlement is 1 for each teardown check that passed and 0 for each that
// failed; a threshold watches it, so a failed teardown fails the run.
const settlement = new Rate('settlement_ok');

export const options = {
  scenarios: {
    smoke: { executor: 'per-vu-iterations', vus: 1, iterations: 1, maxDuration: '60s' },
  },
  thresholds: {
    checks: ['rate==1'],
    settlement_ok: ['rate==1'],
    http_req_failed: ['rate==0'],
    'http_req_duration{name:purchase}': ['max<2000'],
  },
};

export function setup() {
  waitReady(30);
  const item = createSale(STOCK, 0, 'k6 smoke');
  return { itemId: item.id, stock: STOCK, user: `smoke-${runId()}` };
}

export default function (data) {
  const { token, res: lres } = login(data.user);
  if (!check(lres, { 'login: 200 with a token': () => token !== null })) {
    fail(`login: HTTP ${lres.status} ${lres.body}`);
  }

  const res = buy(token, data.itemId);
  const body = json(res) || {};
  const ok = check(res, {
    'purchase: 202': (r) => r.status === 202,
    'purchase: status queued': () => body.status === 'queued',
    'purchase: has an order id': () => typeof body.order_id === 'string' && body.order_id.length > 0,
    'purchase: Location names the order': (r) => r.headers.Location === `/api/v1/orders/${body.order_id}`,
  });
  if (!ok) fail(`purchase: HTTP ${res.status} ${res.body}`);

  // The worker confirms through Kafka and the database; poll until it has.
  let o = null;
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    o = order(token, body.order_id).order;
    if (o && o.status !== 'queued') break;
    sleep(0.2);
  }
  check(o, {
    'order: confirmed within 30s': (x) => x !== null && x.status === 'confirmed',
    'order: is this user\'s, for this item': (x) => x !== null && x.user_id === data.user && x.item_id === data.itemId,
  });

  const again = buy(token, data.itemId);
  check(again, {
    'second purchase: 409 already_purchased': (r) => r.status === 409 && errorCode(r) === 'already_purchased',
    'second purchase: names the first order': (r) => (json(r) || {}).order_id === body.order_id,
  });
}

export function teardown(data) {
  const { settled, stats: s } = waitSettled(data.itemId, 30);
  const results = {
    'settled: nothing pending, consistent': settled,
    'exactly one unit confirmed': !!s && s.orders_confirmed === 1 && s.orders_failed === 0,
    'redis stock = total - 1': !!s && s.stock_left_redis === data.stock - 1,
    'db stock = total - 1': !!s && s.stock_left_db === data.stock - 1,
  };
  let allOk = true;
  for (const [name, ok] of Object.entries(results)) {
    check(null, { [`teardown: ${name}`]: () => ok });
    settlement.add(ok);
    allOk = allOk && ok;
  }
  console.log(`smoke: item ${data.itemId} stats ${JSON.stringify(s)}`);
  if (!allOk) fail(`smoke teardown: stock accounting is wrong: ${JSON.stringify(s)}`);
}
