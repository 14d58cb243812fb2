import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { utf8, toHex } from '../src/codec/binary.js';
import { combine, deal, partialSign, verify, type Dealt, type Partial } from '../src/crypto/threshold.js';
import { loadAverage, machineDescription, median, numberOption, parseOptions, timeOp, timeOpAsync, type Timing } from './lib/timing.js';
import * as opt from './backends/noble-opt.js';
import * as mclB from './backends/mcl.js';
import * as blstB from './backends/blst.js';
import { VerifyPool } from './backends/verify-pool.js';
import { subsets } from './lib/subsets.js';

/**
 * `npm run bench -- crypto-backends [--budget-ms N] [--rounds N] [--pool-messages N] [--only REGEX]`
 * (`--only` keeps the operations whose "backend operation" matches, e.g. `--only 'throughput'`)
 *
 * Compares BLS12-381 backends for cbft's threshold signatures (signatures in G1, keys in G2,
 * cbft's DST, ZCash compressed encoding): noble as used by src/crypto/threshold.ts, pure-noble
 * optimisations (bench/backends/noble-opt.ts), mcl-wasm, and @chainsafe/blst (native; Ethereum
 * min-pk only, so a reference). Correctness cross-checks run first; rounds are interleaved so
 * each round sees the same mix of machine load.
 */

interface Row {
  backend: string;
  op: string;
  us: number[]; // wall-clock µs/op, one entry per round
  cpuUs: number[]; // process CPU µs/op (user + system, all threads), one entry per round
  note?: string;
}

interface Check {
  check: string;
  result: 'pass' | 'FAIL' | 'n/a';
  detail?: string;
}

const enc = (b: Uint8Array) => toHex(b);
let counter = 0;
const freshMessage = () => utf8(`cbft batch root ${process.pid}/${counter++}/${Math.random()}`);

/** A G1 point on the curve but outside the prime-order subgroup, compressed (flags set by hand). */
function nonSubgroupG1(): Uint8Array {
  const { Fp } = bls12_381.fields;
  for (let x = 1n; ; x++) {
    const rhs = Fp.add(Fp.mul(Fp.sqr(x), x), 4n);
    let y: bigint;
    try {
      y = Fp.sqrt(rhs);
    } catch {
      continue;
    }
    const p = bls12_381.G1.Point.fromAffine({ x, y });
    if (p.isTorsionFree()) continue;
    const out = Fp.toBytes(x);
    out[0]! |= 0x80;
    if (y > (Fp.ORDER - 1n) / 2n) out[0]! |= 0x20;
    return out;
  }
}

function crossChecks(d2: Dealt, d3: Dealt): Check[] {
  const checks: Check[] = [];
  const add = (check: string, ok: boolean, detail?: string) => checks.push({ check, result: ok ? 'pass' : 'FAIL', ...(detail ? { detail } : {}) });
  const m = utf8('cross-check message');
  const other = utf8('another message');

  for (const [t, d] of [
    [2, d2],
    [3, d3],
  ] as const) {
    const noblePartials: Partial[] = d.shares.map((s) => ({ index: s.index, signature: partialSign(s, m) }));
    const mclPartials: Partial[] = d.shares.map((s) => ({ index: s.index, signature: mclB.partialSign(s.secretKey, m) }));
    const optPartials: Partial[] = d.shares.map((s) => ({ index: s.index, signature: opt.partialSignOpt(s.secretKey, m) }));
    add(`t=${t}: mcl-wasm partial signatures byte-identical to noble (${d.shares.length} shares)`, mclPartials.every((p, i) => enc(p.signature) === enc(noblePartials[i]!.signature)));
    add(`t=${t}: noble-opt partial signatures byte-identical to noble`, optPartials.every((p, i) => enc(p.signature) === enc(noblePartials[i]!.signature)));
    const combos = subsets(noblePartials, t);
    let mclSame = true;
    let optSame = true;
    let mclVerifies = true;
    let nobleVerifiesMcl = true;
    for (const combo of combos) {
      const ref = enc(combine(combo, t));
      const viaMcl = mclB.combine(combo, t);
      mclSame &&= enc(viaMcl) === ref;
      mclVerifies &&= mclB.verify(d.groupPublicKey, m, viaMcl);
      nobleVerifiesMcl &&= verify(d.groupPublicKey, m, viaMcl);
      for (const method of ['integer', 'unsafe', 'msm'] as const) {
        for (const subgroupCheck of [true, false]) optSame &&= enc(opt.combineOpt(combo, t, { method, subgroupCheck })) === ref;
      }
    }
    add(`t=${t}: mcl-wasm combine byte-identical to noble for all ${combos.length} t-subsets`, mclSame);
    add(`t=${t}: noble-opt combine (integer/unsafe/msm × with/without subgroup check) identical for all t-subsets`, optSame);
    add(`t=${t}: mcl-wasm verify accepts, noble verify accepts mcl's combined signatures`, mclVerifies && nobleVerifiesMcl);
    const sig = combine(noblePartials.slice(0, t), t);
    add(`t=${t}: mcl-wasm verify rejects wrong message and foreign key`, !mclB.verify(d.groupPublicKey, other, sig) && !mclB.verify(d.shares[0]!.publicKey, m, sig));
    const badCombo = [{ index: 1, signature: mclB.partialSign(d.shares[0]!.secretKey, other) }, ...noblePartials.slice(1, t)];
    add(`t=${t}: combination with a wrong partial fails verification on both backends`, !mclB.verify(d.groupPublicKey, m, mclB.combine(badCombo, t)) && !verify(d.groupPublicKey, m, combine(badCombo, t)));
    add(`t=${t}: noble-opt batch verify accepts ${t + 3} valid, rejects one bad among them`, (() => {
      const items = Array.from({ length: t + 3 }, () => {
        const msg = freshMessage();
        return { message: msg, signature: combine(d.shares.slice(0, t).map((s) => ({ index: s.index, signature: mclB.partialSign(s.secretKey, msg) })), t) };
      });
      const bad = items.map((it, i) => (i === 2 ? { ...it, message: other } : it));
      return opt.batchVerify(d.groupPublicKey, items) && !opt.batchVerify(d.groupPublicKey, bad);
    })());
  }

  // Encodings that must never verify.
  const ns = nonSubgroupG1();
  const inf = new Uint8Array(48);
  inf[0] = 0xc0;
  const nobleRejects = !verify(d2.groupPublicKey, m, ns) && !verify(d2.groupPublicKey, m, inf);
  const mclRejects = !mclB.verify(d2.groupPublicKey, m, ns) && !mclB.verify(d2.groupPublicKey, m, inf);
  let mclCombineRejects = false;
  try {
    mclB.combine([{ index: 1, signature: ns }, { index: 2, signature: partialSign(d2.shares[1]!, m) }], 2);
  } catch {
    mclCombineRejects = true;
  }
  add('non-subgroup G1 point and infinity never verify (noble, mcl-wasm); mcl combine refuses a non-subgroup partial', nobleRejects && mclRejects && mclCombineRejects);

  // blst: the mirrored (Ethereum) scheme only.
  const sk = d2.shares[0]!.secretKey;
  const ls = bls12_381.longSignatures;
  const nobleG2 = ls.Signature.toBytes(ls.sign(ls.hash(m, blstB.ETH_DST), sk));
  const blstSig = blstB.sign(sk, m);
  add('blst: same secret key and message give the same G2 signature as noble with the Ethereum DST', enc(blstSig) === enc(nobleG2));
  add('blst: verify accepts, rejects wrong message', blstB.verify(blstB.publicKeyOf(sk), m, nobleG2) && !blstB.verify(blstB.publicKeyOf(sk), other, nobleG2));
  checks.push({
    check: 'blst: G1 signatures with the cbft DST, Lagrange combine',
    result: 'n/a',
    detail: '@chainsafe/blst 2.x is hard-wired to min-pk (keys G1, signatures G2) and the Ethereum DST; no point × scalar API',
  });
  checks.push({
    check: 'mcl-wasm: custom DST',
    result: 'n/a',
    detail: 'not exported (no mclBnG1_setDst); hash_to_field with cbft DST in noble + mcl Fp.mapToG1, byte-identical (above)',
  });
  return checks;
}

/** Signed messages under a threshold-1 key (share secret = master secret), made quickly with mcl. */
function signedMessages(d1: Dealt, n: number): { message: Uint8Array; signature: Uint8Array }[] {
  const sk = d1.shares[0]!.secretKey;
  return Array.from({ length: n }, () => {
    const message = freshMessage();
    return { message, signature: mclB.partialSign(sk, message) };
  });
}

async function poolThroughput(d1: Dealt, budgetMs: number, perRun: number): Promise<Row[]> {
  const rows: Row[] = [];
  // Three modes, each at most budget / (~4 ms per verify) messages plus warm-up runs.
  const supply = signedMessages(d1, 3 * (Math.ceil(budgetMs / 4) + perRun * 8));
  let next = 0;
  const take = () => {
    const items = supply.slice(next, next + perRun);
    next += perRun;
    if (items.length < perRun) throw new Error('pool benchmark ran out of pre-signed messages');
    return items;
  };
  const pk = d1.groupPublicKey;
  const inline = await timeOpAsync(budgetMs, async () => {
    for (const it of take()) if (!verify(pk, it.message, it.signature)) throw new Error('inline verify failed');
  });
  rows.push({ backend: 'noble (threshold.ts)', op: `verify throughput, main thread (${perRun} new messages per run)`, us: [inline.usPerOp / perRun], cpuUs: [inline.cpuUsPerOp / perRun] });
  for (const size of [1, 2]) {
    const pool = new VerifyPool(size);
    try {
      // Warm each worker: key decoding and pairing precompute happen once per worker.
      await Promise.all(Array.from({ length: size * 2 }, () => take()[0]!).map((it) => pool.verify(pk, it.message, it.signature)));
      const t = await timeOpAsync(budgetMs, async () => {
        const oks = await Promise.all(take().map((it) => pool.verify(pk, it.message, it.signature)));
        if (!oks.every(Boolean)) throw new Error('pool verify failed');
      });
      rows.push({ backend: 'noble (threshold.ts)', op: `verify throughput, worker pool of ${size} (${perRun} new messages per run)`, us: [t.usPerOp / perRun], cpuUs: [t.cpuUsPerOp / perRun] });
    } finally {
      await pool.close();
    }
  }
  return rows;
}

export async function runCryptoBackends(budgetMs: number, rounds: number, poolMessages: number, only?: RegExp): Promise<{ checks: Check[]; rows: Row[] }> {
  await mclB.initMcl();
  const d1 = deal(1, 1);
  const d2 = deal(2, 4);
  const d3 = deal(3, 7);
  const checks = crossChecks(d2, d3);

  const fixed = utf8('fixed batch root');
  const partials = (d: Dealt, idx: number[], msg = fixed): Partial[] =>
    idx.map((i) => ({ index: i, signature: partialSign(d.shares[i - 1]!, msg) }));
  const p2 = partials(d2, [1, 2]);
  const p2far = partials(d2, [1, 4]);
  const p3 = partials(d3, [1, 2, 3]);
  const p3far = partials(d3, [2, 5, 7]);
  const sig2 = combine(p2, 2);
  const sk = d2.shares[0]!.secretKey;
  const hashedFixed = opt.hashToG1(fixed);
  const mclHashedFixed = mclB.hashToG1(fixed);
  const blstSk = sk;
  const blstPk = blstB.publicKeyOf(blstSk);
  const blstSig = blstB.sign(blstSk, fixed);
  const blstSigs = [1, 2, 3].map((i) => blstB.sign(d3.shares[i]!.secretKey, fixed));
  const small = new Uint8Array(32);
  small[31] = 3;
  const randomScalarBytes = d3.shares[3]!.secretKey;
  const smallBig = 3n;
  const randomBig = BigInt('0x' + toHex(randomScalarBytes));
  const randomScalarBytes2 = d3.shares[4]!.secretKey;
  const randomBig2 = BigInt('0x' + toHex(randomScalarBytes2));
  // Verification supply: new, validly signed messages for the "new message" rows (about 1.4 ×
  // budget messages per round are used). Should it run out, cycling stays honest because the
  // message caches (256 entries, FIFO) are smaller than the supply and so always miss.
  const verifySupply = signedMessages(d1, Math.ceil(2 * budgetMs * rounds) + 512);
  let vs = 0;
  const nextSigned = () => verifySupply[vs++ % verifySupply.length]!;
  const batchItems = (k: number) => Array.from({ length: k }, nextSigned);

  type Bench = { backend: string; op: string; note?: string; run: () => Timing };
  const t = (f: (i: number) => unknown) => () => timeOp(budgetMs, f);
  const benches: Bench[] = [
    // noble, exactly as src/crypto/threshold.ts does it today.
    { backend: 'noble (threshold.ts)', op: 'hash-to-curve G1 (cbft DST)', run: t(() => opt.hashToG1(freshMessage())) },
    { backend: 'noble (threshold.ts)', op: 'partial sign, new message', run: t(() => partialSign(d2.shares[0]!, freshMessage())) },
    { backend: 'noble (threshold.ts)', op: 'combine t=2 (indices 1,2)', run: t(() => combine(p2, 2)) },
    { backend: 'noble (threshold.ts)', op: 'combine t=2 (indices 1,4)', run: t(() => combine(p2far, 2)) },
    { backend: 'noble (threshold.ts)', op: 'combine t=3 (indices 1,2,3)', run: t(() => combine(p3, 3)) },
    { backend: 'noble (threshold.ts)', op: 'combine t=3 (indices 2,5,7)', run: t(() => combine(p3far, 3)) },
    { backend: 'noble (threshold.ts)', op: 'verify, cached key + cached message', run: t(() => verify(d2.groupPublicKey, fixed, sig2)) },
    {
      backend: 'noble (threshold.ts)',
      op: 'verify, cached key, new message (hash + pairing)',
      run: t(() => {
        const it = nextSigned();
        if (!verify(d1.groupPublicKey, it.message, it.signature)) throw new Error('verify failed');
      }),
    },
    {
      backend: 'noble (threshold.ts)',
      op: 'verify via shortSignatures.verify (no cached precompute), new message',
      run: t(() => {
        const it = nextSigned();
        if (!opt.verifyNaive(d1.groupPublicKey, it.message, it.signature)) throw new Error('verify failed');
      }),
    },
    {
      backend: 'noble (threshold.ts)',
      op: 'top per batch: combine t=2 + verify (cached hash)',
      run: t(() => verify(d2.groupPublicKey, fixed, combine(p2far, 2))),
    },
    // Pure-noble optimisations.
    { backend: 'noble-opt', op: 'partial sign, new message (encode without re-checking subgroup)', run: t(() => opt.partialSignOpt(sk, freshMessage())) },
    { backend: 'noble-opt', op: 'partial sign, hash already computed', run: t(() => opt.partialSignOpt(sk, fixed, hashedFixed)) },
    ...([
      ['t=2 (indices 1,2)', p2, 2],
      ['t=2 (indices 1,4)', p2far, 2],
      ['t=3 (indices 1,2,3)', p3, 3],
      ['t=3 (indices 2,5,7)', p3far, 3],
    ] as const).flatMap(([label, ps, th]): Bench[] => [
      { backend: 'noble-opt', op: `combine ${label}: multiplyUnsafe, subgroup checks kept`, run: t(() => opt.combineOpt([...ps], th, { method: 'unsafe', subgroupCheck: true })) },
      { backend: 'noble-opt', op: `combine ${label}: pippenger MSM, subgroup checks kept`, run: t(() => opt.combineOpt([...ps], th, { method: 'msm', subgroupCheck: true })) },
      { backend: 'noble-opt', op: `combine ${label}: integer Lagrange, subgroup checks kept`, run: t(() => opt.combineOpt([...ps], th, { method: 'integer', subgroupCheck: true })) },
      { backend: 'noble-opt', op: `combine ${label}: integer Lagrange, no subgroup checks`, run: t(() => opt.combineOpt([...ps], th, { method: 'integer', subgroupCheck: false })) },
    ]),
    {
      backend: 'noble-opt',
      op: 'top per batch: combine t=2 (indices 1,4; integer, no partial checks) + verify (cached hash)',
      run: t(() => verify(d2.groupPublicKey, fixed, opt.combineOpt(p2far, 2, { method: 'integer', subgroupCheck: false }))),
    },
    ...[2, 4, 8, 16].map(
      (k): Bench => ({
        backend: 'noble-opt',
        op: `batch verify, ${k} new messages, per signature (hash + checks + 1 pairing product)`,
        run: () => {
          const r = timeOp(budgetMs, () => {
            if (!opt.batchVerify(d1.groupPublicKey, batchItems(k))) throw new Error('batch verify failed');
          });
          return { usPerOp: r.usPerOp / k, cpuUsPerOp: r.cpuUsPerOp / k, bestSliceUsPerOp: r.bestSliceUsPerOp / k, opsPerSec: r.opsPerSec * k, runs: r.runs * k };
        },
      }),
    ),
    // mcl-wasm.
    { backend: 'mcl-wasm', op: 'hash-to-curve G1 (noble hash_to_field + mcl map)', run: t(() => mclB.hashToG1(freshMessage())) },
    { backend: 'mcl-wasm', op: 'partial sign, new message (variable-time!)', run: t(() => mclB.partialSign(sk, freshMessage())) },
    { backend: 'mcl-wasm', op: 'combine t=2 (indices 1,2)', run: t(() => mclB.combine(p2, 2)) },
    { backend: 'mcl-wasm', op: 'combine t=2 (indices 1,4)', run: t(() => mclB.combine(p2far, 2)) },
    { backend: 'mcl-wasm', op: 'combine t=3 (indices 1,2,3)', run: t(() => mclB.combine(p3, 3)) },
    { backend: 'mcl-wasm', op: 'combine t=3 (indices 2,5,7)', run: t(() => mclB.combine(p3far, 3)) },
    { backend: 'mcl-wasm', op: 'verify, cached key + cached message', run: t(() => mclB.verify(d2.groupPublicKey, fixed, sig2)) },
    {
      backend: 'mcl-wasm',
      op: 'verify, cached key, new message (hash + pairing)',
      run: t(() => {
        const it = nextSigned();
        if (!mclB.verify(d1.groupPublicKey, it.message, it.signature, false)) throw new Error('verify failed');
      }),
    },
    {
      backend: 'mcl-wasm',
      op: 'verify, cold key (decode + G2 precompute) + new message',
      run: t(() => {
        mclB.clearKeyCache();
        const it = nextSigned();
        if (!mclB.verify(d1.groupPublicKey, it.message, it.signature, false)) throw new Error('verify failed');
      }),
    },
    // @chainsafe/blst: Ethereum min-pk (signatures in G2); reference only.
    { backend: 'blst (G2 sigs, ref.)', op: 'sign, new message (hash to G2 + multiply)', run: t(() => blstB.sign(blstSk, freshMessage())) },
    { backend: 'blst (G2 sigs, ref.)', op: 'verify, cached key, same message (blst always hashes)', run: t(() => blstB.verify(blstPk, fixed, blstSig)) },
    { backend: 'blst (G2 sigs, ref.)', op: 'aggregate 2 signatures (sum, NOT Lagrange)', run: t(() => blstB.aggregate(blstSigs.slice(0, 2))) },
    { backend: 'blst (G2 sigs, ref.)', op: 'aggregate 3 signatures (sum, NOT Lagrange)', run: t(() => blstB.aggregate(blstSigs)) },
    // Constant-time probes: multiplication by a tiny vs a full-size secret scalar.
    { backend: 'noble (threshold.ts)', op: 'CT probe: G1 multiply by 3', run: t(() => hashedFixed.multiply(smallBig)) },
    { backend: 'noble (threshold.ts)', op: 'CT probe: G1 multiply by a random scalar', run: t(() => hashedFixed.multiply(randomBig)) },
    { backend: 'noble (threshold.ts)', op: 'CT probe: G1 multiply by another random scalar', run: t(() => hashedFixed.multiply(randomBig2)) },
    { backend: 'mcl-wasm', op: 'CT probe: G1 mul by 3', run: t(() => mclB.mulG1(mclHashedFixed, small)) },
    { backend: 'mcl-wasm', op: 'CT probe: G1 mul by a random scalar', run: t(() => mclB.mulG1(mclHashedFixed, randomScalarBytes)) },
    { backend: 'mcl-wasm', op: 'CT probe: G1 mul by another random scalar', run: t(() => mclB.mulG1(mclHashedFixed, randomScalarBytes2)) },
    { backend: 'blst (G2 sigs, ref.)', op: 'CT probe: sign with secret key 3', run: t(() => blstB.sign(small, fixed)) },
    { backend: 'blst (G2 sigs, ref.)', op: 'CT probe: sign with a random secret key', run: t(() => blstB.sign(randomScalarBytes, fixed)) },
    { backend: 'blst (G2 sigs, ref.)', op: 'CT probe: sign with another random secret key', run: t(() => blstB.sign(randomScalarBytes2, fixed)) },
  ];

  const selected = only ? benches.filter((b) => only.test(`${b.backend} ${b.op}`)) : benches;
  const withPool = !only || only.test('noble (threshold.ts) verify throughput, worker pool');
  const rows: Row[] = selected.map((b) => ({ backend: b.backend, op: b.op, us: [], cpuUs: [], ...(b.note ? { note: b.note } : {}) }));
  for (let r = 0; r < rounds; r++) {
    process.stderr.write(`round ${r + 1}/${rounds} (load average ${loadAverage()})\n`);
    for (const [i, b] of selected.entries()) {
      const res = b.run();
      rows[i]!.us.push(res.usPerOp);
      rows[i]!.cpuUs.push(res.cpuUsPerOp);
      process.stderr.write(`  ${b.backend.padEnd(20)} ${b.op.padEnd(90)} ${res.usPerOp.toFixed(1).padStart(10)} µs wall ${res.cpuUsPerOp.toFixed(1).padStart(10)} µs CPU\n`);
    }
    const poolRows = withPool ? await poolThroughput(d1, Math.max(budgetMs, 1500), poolMessages) : [];
    for (const pr of poolRows) {
      const existing = rows.find((x) => x.backend === pr.backend && x.op === pr.op);
      if (existing) {
        existing.us.push(...pr.us);
        existing.cpuUs.push(...pr.cpuUs);
      }
      else rows.push(pr);
      process.stderr.write(`  ${pr.backend.padEnd(20)} ${pr.op.padEnd(90)} ${pr.us[0]!.toFixed(1).padStart(10)} µs wall/verify ${pr.cpuUs[0]!.toFixed(1).padStart(10)} µs CPU/verify\n`);
    }
  }
  return { checks, rows };
}

function fmt(us: number): string {
  return us >= 100 ? us.toFixed(0) : us.toFixed(1);
}

export function rowsTable(rows: Row[]): string {
  const rounds = Math.max(...rows.map((r) => r.us.length));
  const rs = Array.from({ length: rounds }, (_, i) => i + 1);
  const head = `| backend | operation | ${rs.map((i) => `wall µs/op r${i}`).join(' | ')} | ${rs.map((i) => `CPU µs/op r${i}`).join(' | ')} | ops/s (median wall) |`;
  const sep = `| --- | --- | ${[...rs, ...rs].map(() => '---:').join(' | ')} | ---: |`;
  const lines = rows.map((r) => {
    const ops = 1e6 / median(r.us);
    return `| ${r.backend} | ${r.op} | ${r.us.map(fmt).join(' | ')} | ${r.cpuUs.map(fmt).join(' | ')} | ${ops >= 100 ? ops.toFixed(0) : ops.toFixed(1)} |`;
  });
  return [head, sep, ...lines].join('\n');
}

export function checksTable(checks: Check[]): string {
  return ['| cross-check | result |', '| --- | --- |', ...checks.map((c) => `| ${c.check}${c.detail ? ` — ${c.detail}` : ''} | ${c.result} |`)].join('\n');
}

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, { 'budget-ms': 'string', rounds: 'string', 'pool-messages': 'string', only: 'string' });
  const only = typeof opts.only === 'string' ? new RegExp(opts.only, 'i') : undefined;
  const budgetMs = numberOption(opts, 'budget-ms', 1000);
  const rounds = numberOption(opts, 'rounds', 2);
  const poolMessages = numberOption(opts, 'pool-messages', 16);
  const machine = machineDescription();
  const loadBefore = loadAverage();
  const { checks, rows } = await runCryptoBackends(budgetMs, rounds, poolMessages, only);
  const loadAfter = loadAverage();
  const date = new Date().toISOString();
  const md =
    `Crypto backends, ${date.slice(0, 16).replace('T', ' ')} UTC, ${machine}; load average ${loadBefore} → ${loadAfter}; ` +
    `budget ${budgetMs} ms per operation per round, ${rounds} interleaved rounds. ` +
    `Wall = elapsed time; CPU = process user + system time (all threads), less sensitive to other load on the machine.\n\n` +
    `${checksTable(checks)}\n\n${rowsTable(rows)}\n`;
  process.stdout.write(`\n${md}`);
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'crypto-backends.json'), JSON.stringify({ date, machine, loadBefore, loadAfter, budgetMs, rounds, checks, rows }, null, 2) + '\n');
  await writeFile(join(dir, 'crypto-backends.md'), md);
  process.stdout.write(`\nwrote bench/results/crypto-backends.json and crypto-backends.md\n`);
  if (checks.some((c) => c.result === 'FAIL')) process.exitCode = 1;
}
