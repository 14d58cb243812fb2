import type { RedteamResult } from './run.js';

/** Everything that makes the red team fail (empty when it passes). */
export function verdict(r: RedteamResult): string[] {
  const bad: string[] = [];
  for (const c of [...r.content, ...r.timing]) {
    const name = 'channel' in c ? `content ${c.channel}` : `timing ${c.key}`;
    if (c.secretBytes > 0) bad.push(`${name} (${c.policy}): ${c.secretBytes} secret bytes reached a client`);
    if (c.unsignedOther + c.badSignature > 0) bad.push(`${name} (${c.policy}): ${c.unsignedOther + c.badSignature} unsigned or badly signed responses`);
    if (c.wrong > 0) bad.push(`${name} (${c.policy}): ${c.wrong} wrong replies`);
    if (c.extraHeaders > 0) bad.push(`${name} (${c.policy}): ${c.extraHeaders} responses with extra headers`);
  }
  for (const i of r.invariants) if (!i.ledgersIdentical || !i.exactlyOnce) bad.push(`invariants (${i.policy}): ${i.problems.join('; ')}`);
  if (r.findings.some((f) => f.includes('run aborted'))) bad.push('a run aborted');
  return bad;
}


const num = (x: number, digits = 3) => (Number.isNaN(x) ? '—' : x.toFixed(digits));
const cell = (s: string | number) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

function table(head: string[], rows: Array<Array<string | number>>): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

export function toMarkdown(r: RedteamResult, command: string): string {
  const out: string[] = [];
  out.push(`## Red team: a compromised replica and a Byzantine firewall node try to leak`);
  out.push('');
  out.push(
    `Measured ${r.date.slice(0, 10)} on ${r.machine}, Node ${r.node}, with \`${command}\` (${(r.durationMs / 1000).toFixed(0)} s; ` +
      `1-minute load average before each cluster started: ${r.loadBefore.map((l) => `${l.load1.toFixed(1)} (${l.policy})`).join(', ')}). Every process of the cluster runs on this one machine.`,
  );
  out.push(
    `Cluster: 4 replicas (s = 1) with 3 honest copies of examples/bank and 1 copy of examples/leaky-replica, 2 chains of 2 firewall nodes; ` +
      `the top node of chain 1 is replaced by a Byzantine one (the real top code whose frames to the correct bottom node pass through a delaying relay). ` +
      `The attacker is the owner of acc-1; the secrets are the owners and balances of acc-2 … acc-8. Every byte a client received (status line, headers, body) ` +
      `is scanned for them in plain text, hex, base64, base64url and percent-encoding; every signed reply is verified against the client's own request digest ` +
      `and compared with what an honest bank answers.`,
  );
  out.push('');
  out.push('### Content channels (must all be 0 in the last column)');
  out.push('');
  out.push(
    table(
      ['leak channel', 'release', 'requests', 'verified', 'firewall errors', 'unsigned / bad signature', 'wrong replies', 'extra headers', 'secret bytes the leaky replica sent', 'control: secret bytes when asked directly', 'secret bytes that reached clients'],
      r.content.map((c) => [
        c.channel,
        c.policy,
        c.requests,
        c.verified,
        c.firewallErrors,
        c.unsignedOther + c.badSignature,
        c.wrong,
        c.extraHeaders,
        c.attemptedBytes,
        Number.isNaN(c.controlBytes) ? '—' : `${c.controlBytes}${c.controlStatusChanged ? ' (+ status changed)' : ''}`,
        c.secretBytes,
      ]),
    ),
  );
  out.push('');
  out.push(
    '"secret bytes the leaky replica sent" is from its own log (all encodings it added to its answers); the control sends the same request straight to the leaky copy, ' +
      'bypassing cbft, and shows the scanner finds the secret there. "wrong replies" are verified replies that differ in status, signed headers or body from what an honest bank answers.',
  );
  out.push('');
  out.push('### Timing channel: capacity in bits per request');
  out.push('');
  out.push(
    table(
      ['adversary', 'on the critical path?', 'delay on a 1 bit', 'release', 'samples (calibration / secret)', 'failed requests', 'median latency bit 0 / bit 1 (ms)', 'bit error rate (secret bits)', 'capacity 1 − H(p) [95% interval]', 'in-sample best threshold 1 − H(p)', 'mutual information, binned (95% noise floor)', 'what the attacker decoded', 'secret bytes / wrong replies'],
      r.timing.map((t) => {
        const e = t.estimate;
        return [
          `${t.scenario}${t.crashes ? ` (${t.crashes} crashes)` : ''}`,
          t.criticalPath,
          t.key === 'leaky-crash' ? 'crash' : `${t.delayMs} ms`,
          `${t.policy}${t.phaseLocked ? ', attacker phase-locked to the grid' : ''}`,
          e ? `${e.samples} (${e.train} / ${e.test})` : `${t.requests} (too few to estimate)`,
          t.requests - t.verified,
          e ? `${num(e.medianMs0, 1)} / ${num(e.medianMs1, 1)}` : '—',
          e ? num(e.pErr) : '—',
          e ? `${num(e.bscBits, 2)} [${num(e.bscBitsLow, 2)}–${num(e.bscBitsHigh, 2)}]` : '—',
          e ? num(e.bscBitsInSample) : '—',
          e ? `${num(e.miBits)} (noise ${num(e.miNoise95)})` : '—',
          t.decodedPreview ? `\`${t.decodedPreview.slice(0, 8).replace(/`/g, "'")}\`` : '—',
          `${t.secretBytes} / ${t.wrong}`,
        ];
      }),
    ),
  );
  out.push('');
  out.push(
    'The adversary sends a public 8-bit pattern (0xA5 repeated) first, then the bits of the secret (`acc-2 Bruno Lindqvist 87310;acc-3 …`), one bit per request of the attacker ' +
      '(sequential `GET /accounts/acc-1`). The attacker learns a latency threshold from the public bits and decodes the secret bits with it; "bit error rate" is the balanced error on the ' +
      'secret bits and "capacity 1 − H(p)" the capacity of the binary symmetric channel with that error rate (the interval comes from the Wilson 95% interval of the error rate over the secret bits). The in-sample column picks the best threshold after seeing all bits (optimistic); ' +
      'the mutual information is between the bit and the latency in equal-count bins (failures in their own bin), Miller–Madow corrected, next to the 95th percentile of the ' +
      'same estimate with the bits shuffled (values below it are estimation noise). A phase-locked attacker sends each request at a chosen offset of the public release grid ' +
      '(it tries 4 offsets on the public bits and keeps the best). ' +
      'Ground truth is the adversary\'s own log (leaky replica) or the relay (Byzantine top). "What the attacker decoded" is the first secret bytes as decoded from the latencies ' +
      '(the secret starts with `acc-2 Br`; · is a non-printable byte). The Byzantine top ignores the release policy (it forwards as early as it can, then adds its delay); ' +
      'only the correct bottom node below it quantizes.',
  );
  out.push('');
  out.push('### Invariants under attack');
  out.push('');
  out.push(
    table(
      ['release', 'honest ledgers identical', 'transfers applied (replica 0 / 1 / 2)', 'acknowledged transfers', 'each acknowledged transfer applied exactly once', 'client-side model = ledgers', 'view changes (per replica)', 'unknown outcomes (per replica)', 'replies recovered from peers (per replica)'],
      r.invariants.map((i) => [
        i.policy,
        i.ledgersIdentical ? 'yes' : 'NO',
        i.ledgerCounts.join(' / '),
        i.acknowledgedTransfers,
        i.exactlyOnce ? 'yes' : 'NO',
        i.modelMatchesLedger ? 'yes' : 'NO',
        i.sidecars.map((s) => s.viewChanges).join(' / '),
        i.sidecars.map((s) => s.unknownOutcomes).join(' / '),
        i.sidecars.map((s) => s.recovered).join(' / '),
      ]),
    ),
  );
  const problems = r.invariants.flatMap((i) => i.problems.map((p) => `[${i.policy}] ${p}`));
  if (problems.length || r.findings.length) {
    out.push('');
    out.push('### Problems seen during the run');
    out.push('');
    for (const p of [...problems, ...r.findings]) out.push(`- ${p.split('\n').join('\n  ')}`);
  }
  const examples = [...r.content, ...r.timing].flatMap((c) => c.examples.map((e) => `${'channel' in c ? c.channel : c.key} (${c.policy}): ${e}`));
  if (examples.length) {
    out.push('');
    out.push('### Examples of failed, unsigned, wrong or leaking replies');
    out.push('');
    for (const e of examples.slice(0, 20)) out.push(`- ${e}`);
  }
  out.push('');
  return out.join('\n');
}

/** The short form for README.md's red-team section: what leaked, per channel, with a link to the rest. */
export function toReadmeSection(r: RedteamResult, command: string): string {
  const policies = [...new Set(r.content.map((c) => c.policy))];
  const channels = [...new Set(r.content.map((c) => c.channel))];
  const content = table(
    ['content channel', 'secret bytes the leaky replica put in its answers', ...policies.map((p) => `reached clients (${p})`)],
    channels.map((ch) => {
      const rows = r.content.filter((c) => c.channel === ch);
      return [ch, rows.reduce((a, c) => a + c.attemptedBytes, 0), ...policies.map((p) => rows.find((c) => c.policy === p)?.secretBytes ?? '—')];
    }),
  );
  const timing = table(
    ['timing adversary', 'on the critical path?', 'release', 'capacity, bits per request [95% interval]'],
    r.timing.map((t) => [
      `${t.scenario}${t.key === 'leaky-crash' ? '' : ` (${t.delayMs} ms on a 1 bit)`}`,
      t.criticalPath,
      `${t.policy}${t.phaseLocked ? ', attacker phase-locked' : ''}`,
      t.estimate ? `${num(t.estimate.bscBits, 2)} [${num(t.estimate.bscBitsLow, 2)}–${num(t.estimate.bscBitsHigh, 2)}]` : 'too few samples',
    ]),
  );
  const held = r.invariants.every((i) => i.ledgersIdentical && i.exactlyOnce && i.modelMatchesLedger);
  const wrong = [...r.content, ...r.timing].reduce((a, c) => a + c.wrong + c.unsignedOther + c.badSignature, 0);
  return [
    `Measured ${r.date.slice(0, 10)} on ${r.machine}, Node ${r.node}, with \`${command}\` (${(r.durationMs / 1000).toFixed(0)} s). ` +
      `Every byte clients received was scanned for the other accounts' owners and balances in plain text, hex, base64, base64url and percent-encoding.`,
    '',
    content,
    '',
    timing,
    '',
    `Unsigned, badly signed or wrong replies: ${wrong}. Honest ledgers identical and every acknowledged transfer applied exactly once: ${held ? 'yes' : 'NO'}. ` +
      'A capacity is 1 − H(p) of the binary symmetric channel the attacker decoded from latencies (p = its bit error rate on the secret bits). ' +
      'Full tables, the method and every sample: [bench/redteam/RESULTS.md](bench/redteam/RESULTS.md).',
  ].join('\n');
}
