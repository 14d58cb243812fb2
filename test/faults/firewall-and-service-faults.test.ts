// Process-level faults of the firewall chains and of the legacy service copies (issue 9): kill -9
// and restart of a middle firewall node, SIGSTOP/SIGCONT of it longer than the request timeout,
// kill -9 of a whole chain (the other chain carries on), on a cluster with chains of 3 nodes in
// front of the example bank; and kill -9 and restart of one legacy service copy, in front of the
// counting service (it keeps its state in a journal: a legacy service that loses its state on a
// crash cannot be made consistent again by anything in front of it). Same checks as
// sidecar-faults.test.ts; results in test/faults/RESULTS.md.

import { afterAll, beforeAll, describe, it } from 'vitest';
import { startFaultCluster, type FaultCluster } from './helpers/cluster.js';
import { bankRead, bankTransfer, countingOp } from './helpers/load.js';
import { caughtUp, primaryOf, rows, runScenario } from './helpers/scenario.js';
import { fileClock, formatTable, publishRows } from './helpers/results.js';

/** Wall time of this file, kept in RESULTS.md. */
const clock = fileClock(import.meta.url);

const LOAD = { clients: 4, ratePerClient: 5 };
const SCENARIO_TIMEOUT = 200_000;

let bankCluster: FaultCluster | undefined;
let countingCluster: FaultCluster | undefined;
const bank = () => bankCluster!;
const counting = () => countingCluster!;

afterAll(async () => {
  await Promise.all([bankCluster?.stop(), countingCluster?.stop()]);
  const all = publishRows(rows, clock);
  console.log(`\n[faults] results (kept in test/faults/RESULTS.md by npm run test:faults):\n${formatTable(all)}\n`);
}, 60_000);

describe('firewall faults under load (chains of 3 nodes)', () => {
  beforeAll(async () => {
    bankCluster = await startFaultCluster({
      replicas: 4,
      chains: 2,
      chainLength: 3,
      service: 'bank',
    });
  }, 120_000);

  afterAll(async () => {
    await bankCluster?.stop();
    bankCluster = undefined;
  }, 60_000);

  it('kill -9 and restart of a middle firewall node', async () => {
    await runScenario({
      name: 'kill -9 + restart: middle firewall node fw-0-1',
      group: 2,
      order: 1,
      fc: bank(),
      load: { ...LOAD, make: bankTransfer('fw-middle-kill') },
      inject: () => bank().kill('fw-0-1'),
      holdMs: 3_000,
      heal: () => bank().restart('fw-0-1'),
      recovered: (load) => load.probe(0, bankRead(load.nextKey('probe'))),
    });
  }, SCENARIO_TIMEOUT);

  it('SIGSTOP / SIGCONT of a middle firewall node, longer than the request timeout', async () => {
    await runScenario({
      name: 'SIGSTOP 7 s + SIGCONT: middle firewall node fw-0-1',
      group: 2,
      order: 2,
      fc: bank(),
      load: { ...LOAD, make: bankTransfer('fw-middle-pause') },
      inject: async () => bank().signal('fw-0-1', 'SIGSTOP'),
      holdMs: 7_000,
      heal: async () => bank().signal('fw-0-1', 'SIGCONT'),
      recovered: (load) => load.probe(0, bankRead(load.nextKey('probe'))),
    });
  }, SCENARIO_TIMEOUT);

  it('kill -9 of a whole chain: the other chain carries on; the chain is restarted', async () => {
    const chain = bank().cluster.chains[0]!.map((n) => n.id);
    await runScenario({
      name: 'kill -9 + restart: whole chain 0 (3 nodes)',
      group: 2,
      order: 3,
      fc: bank(),
      load: { ...LOAD, make: bankTransfer('chain-kill') },
      inject: async () => {
        await Promise.all(chain.map((id) => bank().kill(id)));
      },
      // Long enough that the outage (hold + restart of 3 nodes, ~11 s) is well over the gap bound.
      holdMs: 8_000,
      heal: async () => {
        for (const id of [...chain].reverse()) await bank().restart(id);
      },
      recovered: (load) => load.probe(0, bankRead(load.nextKey('probe'))),
      // Chain 1 must keep answering from the kill until chain 0 answers again. The bounds are
      // generous on purpose (a loaded, shared 2-core machine; restarting 3 node processes takes
      // CPU too): the load offers 20 req/s and chain 1 normally answers 15-19/s with gaps of
      // 0.2-0.5 s, so >= 2/s and < 4 s leave an order of magnitude for scheduling hiccups. A gap
      // beyond 4 s is no hiccup: most of a request timeout (5 s here) went by without chain 1
      // answering anything, i.e. it stalled with chain 0. The measured figures go to the notes.
      carriesOn: { chains: [1], maxGapMs: 4_000, minPerSec: 2 },
    });
  }, SCENARIO_TIMEOUT);
});

describe('legacy service faults under load', () => {
  beforeAll(async () => {
    countingCluster = await startFaultCluster({
      replicas: 4,
      chains: 2,
      chainLength: 2,
      service: 'counting',
    });
  }, 120_000);

  it('kill -9 and restart of the primary replica\'s legacy service copy', async () => {
    const i = await primaryOf(counting());
    await runScenario({
      name: "kill -9 + restart: the primary's legacy service copy",
      group: 2,
      order: 4,
      fc: counting(),
      load: { ...LOAD, make: countingOp('upstream-kill') },
      inject: () => counting().kill(`upstream-${i}`),
      holdMs: 3_000,
      heal: () => counting().restart(`upstream-${i}`),
      recovered: () => caughtUp(counting(), `replica-${i}`),
    });
  }, SCENARIO_TIMEOUT);
});


