import { LinkKey } from '../src/transport/link-key.js';
import { writeFile, mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { utf8 } from '../src/codec/binary.js';
import { sha256 } from '../src/crypto/hash.js';
import { buildTree } from '../src/codec/merkle.js';
import { IdentitySigner, generateIdentity, verifyIdentity } from '../src/crypto/identity.js';
import { clearCaches, combine, deal, partialSign, verify } from '../src/crypto/threshold.js';

/**
 * Crypto micro-benchmarks: each operation runs for a fixed time budget after a warm-up, and the
 * result is operations per second and mean microseconds per operation.
 */
export interface CryptoResult {
  name: string;
  opsPerSec: number;
  usPerOp: number;
  runs: number;
}

function measure(name: string, budgetMs: number, op: (i: number) => void): CryptoResult {
  for (let i = 0; i < 3; i++) op(i); // warm-up: JIT and caches
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs || runs < 5) op(runs++);
  const elapsed = performance.now() - start;
  return { name, opsPerSec: (runs * 1000) / elapsed, usPerOp: (elapsed * 1000) / runs, runs };
}

export async function runCryptoBench(budgetMs = 1500): Promise<CryptoResult[]> {
  const results: CryptoResult[] = [];
  const msg = (i: number) => utf8(`batch root ${i}`);

  for (const [t, n] of [
    [2, 4],
    [3, 7],
    [4, 10],
  ] as const) {
    const dealt = deal(t, n);
    const fixed = msg(0);
    const partials = dealt.shares.slice(0, t).map((s) => ({ index: s.index, signature: partialSign(s, fixed) }));
    if (t === 2) {
      results.push(measure('bls partial sign (new message each time)', budgetMs, (i) => partialSign(dealt.shares[0]!, msg(i + 1000))));
      const sig = combine(partials, t);
      results.push(measure('bls verify, cached key and message', budgetMs, () => verify(dealt.groupPublicKey, fixed, sig)));
      const signed = Array.from({ length: 64 }, (_, i) => {
        const m = msg(i + 5000);
        return { m, sig: combine(dealt.shares.slice(0, t).map((s) => ({ index: s.index, signature: partialSign(s, m) })), t) };
      });
      results.push(
        measure('bls verify, new message (hash-to-curve + pairing)', budgetMs, (i) => {
          const x = signed[i % signed.length]!;
          verify(dealt.groupPublicKey, x.m, x.sig);
        }),
      );
      results.push(
        measure('bls verify, cold (key decode + precompute + hash + pairing)', budgetMs, (i) => {
          clearCaches();
          const x = signed[i % signed.length]!;
          verify(dealt.groupPublicKey, x.m, x.sig);
        }),
      );
    }
    results.push(measure(`bls combine t=${t}`, budgetMs, () => combine(partials, t)));
  }

  const leaves = Array.from({ length: 64 }, (_, i) => sha256(utf8(`leaf ${i}`)));
  const salt = sha256(utf8('salt'));
  results.push(measure('merkle root of 64 leaves (depth 6)', budgetMs, () => buildTree(leaves, 6, salt)));
  results.push(measure('merkle root of 64 leaves padded to depth 8', budgetMs, () => buildTree(leaves, 8, salt)));

  const id = generateIdentity();
  const signer = new IdentitySigner(id.secretKey);
  const frame = new Uint8Array(1024);
  const sig = signer.sign(frame);
  results.push(measure('ed25519 sign 1 KiB (node:crypto)', budgetMs, () => signer.sign(frame)));
  results.push(measure('ed25519 verify 1 KiB (node:crypto)', budgetMs, () => verifyIdentity(id.publicKey, frame, sig)));
  results.push(measure('sha256 1 KiB (node:crypto)', budgetMs, () => sha256(frame)));
  const peer = generateIdentity();
  results.push(measure('link key derivation (X25519 + HKDF, once per link)', budgetMs, () => LinkKey.derive(signer, peer.publicKey, 'a', 'b')));
  const key = LinkKey.derive(signer, peer.publicKey, 'a', 'b');
  const mac = key.mac(frame);
  results.push(measure('link MAC 1 KiB frame (HMAC-SHA256, node:crypto)', budgetMs, () => key.mac(frame)));
  results.push(measure('link MAC check 1 KiB frame', budgetMs, () => key.verify(frame, mac)));
  return results;
}

export function cryptoTable(results: CryptoResult[]): string {
  const rows = results.map((r) => `| ${r.name} | ${r.opsPerSec.toFixed(r.opsPerSec < 100 ? 1 : 0)} | ${r.usPerOp.toFixed(1)} |`);
  return ['| operation | ops/s | µs/op |', '| --- | ---: | ---: |', ...rows].join('\n');
}

export async function main(): Promise<void> {
  const results = await runCryptoBench();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  const table = cryptoTable(results);
  process.stdout.write(`crypto micro-benchmarks (${machine})\n\n${table}\n`);
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const out = { date: new Date().toISOString(), machine, results };
  await writeFile(join(dir, 'crypto.json'), JSON.stringify(out, null, 2) + '\n');
  await writeFile(join(dir, 'crypto.md'), `Crypto micro-benchmarks, ${out.date.slice(0, 10)}, ${machine}\n\n${table}\n`);
  process.stdout.write(`\nwrote bench/results/crypto.json and crypto.md\n`);
}
