// bots: what bots win against a fair sale, per strategy, next to honest
// users (docs/FAIRNESS.md).
//
// setup() creates one pow sale of STOCK units that opens OPEN_IN seconds
// later, with a low purchase_rate so the proof-of-work difficulty visibly
// climbs under load, and has the replay bot's donor account solve one
// challenge for one ticket. Four populations then run for DURATION:
//   honest       HONEST_RATE new users per second. Each waits for the
//                opening like a person watching the countdown, fetches a
//                challenge, solves it, fetches a ticket and buys once; after
//                a 429 or 503 it retries (the ticket was not used, so it is
//                kept), at most 3 times, as the sale page does.
//   skip_ticket  SKIP_VUS VUs firing purchases from fresh throwaway accounts
//                as fast as they can, from before the opening, with no
//                ticket or a made-up one: the script that never loads the
//                page.
//   replay       REPLAY_VUS VUs replaying the donor's one solved ticket from
//                many connections, each purchase from another throwaway
//                account: one proof of work paid once, spent many times.
//   solver       SOLVER_VUS VUs that do everything the honest client does,
//                from fresh throwaway accounts, back to back at full CPU:
//                the bot farm proof of work prices but cannot stop.
// Every 202 counts as a unit won (units_won, tagged by strategy). The
// summary prints attempts, units won and hashes per strategy. Thresholds
// fail the run if skip_ticket or replay win anything, and teardown checks
// that the server sold exactly the units the clients were told they won.
//
// Parameters: STOCK (40), DURATION (20 s), OPEN_IN (3 s), HONEST_RATE (8
// users/s), SKIP_VUS (4), REPLAY_VUS (4), SOLVER_VUS (2), PURCHASE_RATE (20:
// the item's purchase_rate, the pressure above which difficulty rises),
// SETTLE_TIMEOUT (60 s), plus BASE_URL and ADMIN_TOKEN (lib.js). The server's
// difficulty bounds are its own flags (make k6-bots sets them).
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import {
  intEnv, login, buy, buyWithTicket, fetchTicket, createSale, waitSettled, waitReady,
  runId, errorCode, finalCount,
} from './lib.js';

const STOCK = intEnv('STOCK', 40);
const DURATION = Math.max(5, intEnv('DURATION', 20));
const OPEN_IN = intEnv('OPEN_IN', 3);
const HONEST_RATE = Math.max(1, intEnv('HONEST_RATE', 8));
const SKIP_VUS = Math.max(1, intEnv('SKIP_VUS', 4));
const REPLAY_VUS = Math.max(1, intEnv('REPLAY_VUS', 4));
const SOLVER_VUS = Math.max(1, intEnv('SOLVER_VUS', 2));
const PURCHASE_RATE = Math.max(1, intEnv('PURCHASE_RATE', 20));
const SETTLE_TIMEOUT = intEnv('SETTLE_TIMEOUT', 60);
const STRATEGIES = ['honest', 'skip_ticket', 'replay', 'solver'];

const won = new Counter('units_won');
const attempts = new Counter('attempts');
const hashes = new Counter('pow_hashes');
// Purchase answers by strategy and outcome ("accepted" or the error code).
const outcomes = new Counter('outcomes');
// The difficulty each solved challenge asked.
const difficulty = new Trend('difficulty');
const OUTCOMES = ['accepted', 'not_started', 'ticket_required', 'invalid_ticket', 'sold_out', 'already_purchased', 'rate_limited', 'unavailable'];

const perStrategy = {};
for (const s of STRATEGIES) {
  perStrategy[`units_won{strategy:${s}}`] = s === 'skip_ticket' || s === 'replay' ? ['count==0'] : ['count>=0'];
  perStrategy[`attempts{strategy:${s}}`] = ['count>=0'];
  perStrategy[`pow_hashes{strategy:${s}}`] = ['count>=0'];
  for (const o of OUTCOMES) perStrategy[`outcomes{strategy:${s},outcome:${o}}`] = ['count>=0'];
}

export const options = {
  setupTimeout: '60s',
  teardownTimeout: `${SETTLE_TIMEOUT + 30}s`,
  scenarios: {
    honest: {
      executor: 'constant-arrival-rate', exec: 'honest', rate: HONEST_RATE, timeUnit: '1s',
      duration: `${DURATION}s`, preAllocatedVUs: HONEST_RATE * 4, maxVUs: HONEST_RATE * 20,
    },
    skip_ticket: { executor: 'constant-vus', exec: 'skipTicket', vus: SKIP_VUS, duration: `${DURATION}s` },
    replay: { executor: 'constant-vus', exec: 'replay', vus: REPLAY_VUS, duration: `${DURATION}s` },
    solver: { executor: 'constant-vus', exec: 'solver', vus: SOLVER_VUS, duration: `${DURATION}s` },
  },
  thresholds: Object.assign({ difficulty: ['max>=0'] }, perStrategy),
  summaryTrendStats: ['min', 'avg', 'med', 'p(95)', 'max'],
};

export function setup() {
  waitReady(30);
  const item = createSale(STOCK, OPEN_IN, 'k6 bots', { protection: 'pow', purchase_rate: PURCHASE_RATE });
  const run = runId();
  // The donor solves one challenge honestly; the replay bot then tries to
  // spend that one ticket from all its accounts.
  const donor = login(`bot-donor-${run}`);
  if (!donor.token) throw new Error(`donor login: HTTP ${donor.res.status}`);
  const t = fetchTicket(donor.token, item.id, 'pow');
  if (!t.ticket) throw new Error(`donor ticket: HTTP ${t.res.status} ${t.res.body}`);
  const openAt = Date.parse(item.starts_at);
  console.log(`bots: item ${item.id}, ${STOCK} units, pow, purchase_rate ${PURCHASE_RATE}, opens ${new Date(openAt).toISOString()}; ` +
    `${DURATION}s of honest ${HONEST_RATE}/s, skip_ticket x${SKIP_VUS}, replay x${REPLAY_VUS}, solver x${SOLVER_VUS}`);
  return { itemId: item.id, openAt, run, donorTicket: t.ticket, donorHashes: t.hashes };
}

function record(strategy, res) {
  const code = res.status === 202 ? 'accepted' : errorCode(res) || `http_${res.status}`;
  attempts.add(1, { strategy });
  outcomes.add(1, { strategy, outcome: code });
  won.add(res.status === 202 ? 1 : 0, { strategy });
  return code;
}

function account(prefix, data) {
  const { token } = login(`${prefix}-${data.run}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`);
  return token;
}

// honest is one person: wait for the button, solve, buy, retry on 429/503.
export function honest(data) {
  const token = account('honest', data);
  if (!token) return;
  const wait = data.openAt - Date.now();
  if (wait > 0) sleep(wait / 1000 + Math.random() * 0.3);
  let ticket = null;
  for (let i = 0; i < 4; i++) {
    if (!ticket) {
      const t = fetchTicket(token, data.itemId, 'pow', { strategy: 'honest' });
      hashes.add(t.hashes, { strategy: 'honest' });
      if (t.difficulty) difficulty.add(t.difficulty);
      if (!t.ticket) return;
      ticket = t.ticket;
    }
    const res = buyWithTicket(token, data.itemId, ticket, { strategy: 'honest' });
    const code = record('honest', res);
    if (code !== 'rate_limited' && code !== 'unavailable') return;
    sleep(0.5 + Math.random() * 0.5);
  }
}

// skipTicket fires purchases with no ticket, or a made-up one.
export function skipTicket(data) {
  const token = account('skip', data);
  if (!token) return;
  const n = exec.vu.iterationInScenario;
  const res = n % 2 === 0 ? buy(token, data.itemId) : buyWithTicket(token, data.itemId, `${Date.now() + 30000}.${'0'.repeat(24)}.forged`, { strategy: 'skip_ticket' });
  record('skip_ticket', res);
}

// replay spends the donor's ticket from another throwaway account.
export function replay(data) {
  const token = account('replay', data);
  if (!token) return;
  record('replay', buyWithTicket(token, data.itemId, data.donorTicket, { strategy: 'replay' }));
}

// solver is the farm: a fresh account, solve at full speed, buy, again.
export function solver(data) {
  const token = account('solver', data);
  if (!token) return;
  const t = fetchTicket(token, data.itemId, 'pow', { strategy: 'solver' });
  hashes.add(t.hashes, { strategy: 'solver' });
  if (t.difficulty) difficulty.add(t.difficulty);
  if (!t.ticket) return;
  record('solver', buyWithTicket(token, data.itemId, t.ticket, { strategy: 'solver' }));
}

export function teardown(data) {
  const { settled, stats: s } = waitSettled(data.itemId, SETTLE_TIMEOUT);
  const st = s || {};
  const wins = finalCount('units_won');
  const held = st.orders_confirmed + st.orders_paid;
  const results = [
    [`settled within ${SETTLE_TIMEOUT}s, consistent`, settled],
    ['no oversell: confirmed + paid <= stock_total', held <= st.stock_total],
    ['the server sold exactly the units the clients won', wins !== null && held === wins],
  ];
  let ok = true;
  for (const [name, pass] of results) {
    check(null, { [`teardown: ${name}`]: () => pass === true });
    if (pass !== true) ok = false;
  }
  console.log(`bots verdict: item ${data.itemId} units won (clients)=${wins} held (server)=${held} stock_left_redis=${st.stock_left_redis} consistent=${st.consistent}`);
  if (!ok) fail(`bots teardown failed: ${results.filter(([, p]) => p !== true).map(([n]) => n).join('; ')}`);
}

function count(data, name) {
  const m = data.metrics[name];
  return m && m.values && typeof m.values.count === 'number' ? m.values.count : 0;
}

function pad(s, n) {
  s = String(s);
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function handleSummary(data) {
  const lines = [];
  lines.push('');
  lines.push('units won per strategy (one pow sale; k6/bots.js, docs/FAIRNESS.md)');
  lines.push(`  ${pad('strategy', 13)}${pad('attempts', 10)}${pad('units won', 11)}${pad('hashes', 13)}hashes per unit won`);
  let allOk = true;
  for (const s of STRATEGIES) {
    const a = count(data, `attempts{strategy:${s}}`);
    const w = count(data, `units_won{strategy:${s}}`);
    const h = count(data, `pow_hashes{strategy:${s}}`);
    lines.push(`  ${pad(s, 13)}${pad(a, 10)}${pad(w, 11)}${pad(h, 13)}${w > 0 ? Math.round(h / w) : '-'}`);
    const m = data.metrics[`units_won{strategy:${s}}`];
    if (m && m.thresholds) {
      for (const [t, r] of Object.entries(m.thresholds)) if (!r.ok) { allOk = false; lines.push(`  FAILED: units_won{strategy:${s}} ${t}`); }
    }
  }
  for (const s of STRATEGIES) {
    const parts = OUTCOMES.map((o) => [o, count(data, `outcomes{strategy:${s},outcome:${o}}`)]).filter(([, n]) => n > 0);
    lines.push(`  ${pad(s, 13)}answers: ${parts.map(([o, n]) => `${o}=${n}`).join(' ') || 'none'}`);
  }
  const dm = data.metrics.difficulty;
  if (dm && dm.values) {
    lines.push(`  difficulty asked (bits): min ${dm.values.min} avg ${Number(dm.values.avg).toFixed(1)} max ${dm.values.max}` +
      ' (solved challenges)');
  }
  const checks = data.metrics.checks;
  if (checks && checks.values) lines.push(`  checks: ${checks.values.passes} passed, ${checks.values.fails} failed`);
  lines.push(allOk ? '  verdict: the bots that skip or replay the ticket won nothing' : '  verdict: FAILED (see above)');
  lines.push('');
  return { stdout: lines.join('\n') };
}
