import { randomBytes } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, digestOf, encodeRequest, leafHash, type CanonicalReply } from '../../src/codec/canonical.js';
import type { HeaderField } from '../../src/codec/headers.js';
import { batchMessage, rootFromProof } from '../../src/codec/merkle.js';
import type { ClusterConfig } from '../../src/cluster/config.js';
import type { NodeKeys } from '../../src/cluster/keys.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { combine, verify, verifyPartial } from '../../src/crypto/threshold.js';
import { MessageKind } from '../../src/transport/frame.js';
import { Link } from '../../src/transport/link.js';
import { startPeerServer, type PeerServer } from '../../src/transport/peer-server.js';
import { decodePartialReplies } from '../../src/wire/payloads.js';
import { signRound } from '../../src/wire/submission.js';

// The top firewall node as a test double against real sidecars: the sidecar tests and the
// `sidecar` bench suite (which sets checkSignatures false to measure the replicas alone).

export interface VerifiedReply {
  digest: string;
  seq: number;
  reply: CanonicalReply;
  replyBytes: Uint8Array;
  proof: Uint8Array;
  signature: Uint8Array;
  root: Uint8Array;
  /** Replica indices whose partials were combined. */
  signers: number[];
  /** Set when the combined signature failed and culprits were identified. */
  culprits: number[];
}

interface Pending {
  payload: Uint8Array;
  resolve: (r: VerifiedReply) => void;
  reject: (e: Error) => void;
  /** root hex -> replica index -> contribution */
  byRoot: Map<string, Map<number, { partial: Uint8Array; reply: Uint8Array; proof: Uint8Array; seq: number }>>;
  timer: NodeJS.Timeout;
  retransmits: number;
  done: boolean;
  /** The envelope, once its round is sealed. */
  sealed?: Uint8Array;
}

export function canonicalRequest(method: string, target: string, body = '', headers: HeaderField[] = [], nonce = randomBytes(16)): Uint8Array {
  const sorted = [...headers].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return encodeRequest({ nonce: new Uint8Array(nonce), method, target, headers: sorted, body: utf8(body) });
}

/**
 * Plays top firewall node `fw-<chain>-<L-1>`: sends Request messages to the primary it believes
 * in (from the views in Partial messages), to every replica after `retransmitMs`, and resolves
 * once s+1 partials on the same batch root combine into a valid service signature.
 */
export class TopClient {
  readonly id: string;
  private server: PeerServer | undefined;
  private readonly links = new Map<number, Link>();
  private readonly signer: IdentitySigner;
  private readonly pending = new Map<string, Pending>();
  private round: Array<{ p: Pending; toAll: boolean }> = [];
  private roundScheduled = false;
  private view = 0;
  /** Batch roots whose combined signature verified (I4: it is the same for every s+1 subset). */
  private readonly verifiedRoots = new Map<string, { signature: Uint8Array; signers: number[] }>();
  partialsReceived = 0;
  /** Requests re-sent to every replica after retransmitMs without a signed reply. */
  retransmissions = 0;
  badPartials = 0;
  /** Every Partial received: replica index, seq, digests. */
  readonly log: Array<{ from: number; seq: number; view: number; digests: string[]; at: number }> = [];

  constructor(
    private readonly cluster: ClusterConfig,
    keys: NodeKeys[],
    private readonly chain = 0,
    private readonly retransmitMs = 1_000,
    /** false: accept s+1 partials on one root without combining them (benchmarks of the sidecars only). */
    private readonly checkSignatures = true,
  ) {
    const top = cluster.chains[chain]![cluster.chains[chain]!.length - 1]!;
    this.id = top.id;
    const k = keys.find((x) => x.id === top.id)!;
    const signer = new IdentitySigner(fromHex(k.identitySecretKey));
    this.signer = signer;
    for (const r of cluster.replicas) {
      this.links.set(r.index, new Link({ url: r.url, from: top.id, to: r.id, signer, peerPublicKey: fromHex(r.identityPublicKey), maxBackoffMs: 500 }));
    }
  }

  async start(): Promise<void> {
    const top = this.cluster.chains[this.chain]![this.cluster.chains[this.chain]!.length - 1]!;
    const u = new URL(top.peerUrl);
    this.server = await startPeerServer({
      host: '127.0.0.1',
      port: Number(u.port),
      self: this.id,
      senders: new Map(this.cluster.replicas.map((r) => [r.id, fromHex(r.identityPublicKey)])),
      identity: this.signer,
      allowed: (from, kind) => kind === MessageKind.Partial && from.startsWith('replica-'),
      onMessages: (from, messages) => {
        const index = Number(from.slice('replica-'.length));
        for (const m of messages) this.onPartial(index, m.payload);
      },
    });
  }

  get primary(): number {
    return this.view % this.cluster.replicas.length;
  }

  /**
   * Submits a request. As the real top does, every request submitted in the same tick joins one
   * round, sealed with one signature (src/wire/submission.ts), sent to the primary (or, with
   * `toAll`, to every replica as after a retransmission timeout).
   */
  submit(payload: Uint8Array, timeoutMs = 30_000, toAll = false): Promise<VerifiedReply> {
    const digest = toHex(digestOf(payload));
    const existing = this.pending.get(digest);
    if (existing) throw new Error('already pending');
    return new Promise<VerifiedReply>((resolve, reject) => {
      const p: Pending = {
        payload,
        resolve,
        reject,
        byRoot: new Map(),
        retransmits: 0,
        done: false,
        timer: setInterval(() => {
          p.retransmits++;
          this.retransmissions++;
          if (p.retransmits * this.retransmitMs >= timeoutMs) {
            this.finish(digest, p);
            const seen = [...p.byRoot.entries()].map(([root, m]) => `${root.slice(0, 8)}: ${[...m.keys()].join(',')}`);
            reject(new Error(`${this.id}: no signed reply for ${digest} within ${timeoutMs} ms (partials by root: ${seen.join('; ') || 'none'})`));
            return;
          }
          if (p.sealed) for (const link of this.links.values()) link.send(MessageKind.Request, p.sealed);
        }, this.retransmitMs),
      };
      this.pending.set(digest, p);
      this.round.push({ p, toAll });
      if (!this.roundScheduled) {
        this.roundScheduled = true;
        setImmediate(() => this.sealRound());
      }
    });
  }

  /** Sends a request to every replica at once (as after a retransmit timeout). */
  submitToAll(payload: Uint8Array, timeoutMs = 30_000): Promise<VerifiedReply> {
    return this.submit(payload, timeoutMs, true);
  }

  private sealRound(): void {
    this.roundScheduled = false;
    const live = this.round.filter((r) => !r.p.done);
    this.round = [];
    if (live.length === 0) return;
    const envelopes = signRound(this.signer, this.id, live.map((r) => ({ request: r.p.payload })));
    live.forEach(({ p, toAll }, i) => {
      p.sealed = envelopes[i]!;
      if (toAll) for (const link of this.links.values()) link.send(MessageKind.Request, p.sealed);
      else this.links.get(this.primary)!.send(MessageKind.Request, p.sealed);
    });
  }

  private finish(digest: string, p: Pending): void {
    p.done = true;
    clearInterval(p.timer);
    this.pending.delete(digest);
  }

  private onPartial(from: number, payload: Uint8Array): void {
    this.partialsReceived++;
    let msg;
    try {
      msg = decodePartialReplies(payload, 64 * 1024 * 1024);
    } catch {
      this.badPartials++;
      return;
    }
    if (msg.view > this.view) this.view = msg.view;
    const digests: string[] = [];
    for (const item of msg.items) {
      let reply: CanonicalReply;
      let root: Uint8Array;
      try {
        reply = decodeReply(item.reply);
        root = rootFromProof(leafHash(item.reply), item.proof, this.cluster.merkleDepth);
      } catch {
        this.badPartials++;
        continue;
      }
      const digest = toHex(reply.requestDigest);
      digests.push(digest);
      const p = this.pending.get(digest);
      if (!p || p.done) continue;
      const rootHex = toHex(root);
      let m = p.byRoot.get(rootHex);
      if (!m) p.byRoot.set(rootHex, (m = new Map()));
      m.set(from, { partial: msg.partial, reply: item.reply, proof: item.proof, seq: msg.seq });
      this.tryCombine(digest, p, root, m);
    }
    this.log.push({ from, seq: msg.seq, view: msg.view, digests, at: Date.now() });
  }

  private tryCombine(digest: string, p: Pending, root: Uint8Array, m: Map<number, { partial: Uint8Array; reply: Uint8Array; proof: Uint8Array; seq: number }>): void {
    const t = this.cluster.s + 1;
    if (m.size < t) return;
    const rootHex = toHex(root);
    if (!this.checkSignatures && !this.verifiedRoots.has(rootHex)) {
      this.verifiedRoots.set(rootHex, { signature: new Uint8Array(48), signers: [...m.keys()].slice(0, t) });
    }
    const known = this.verifiedRoots.get(rootHex);
    if (known) {
      const [, first] = [...m.entries()][0]!;
      this.finish(digest, p);
      p.resolve({ digest, seq: first.seq, reply: decodeReply(first.reply), replyBytes: first.reply, proof: first.proof, signature: known.signature, root, signers: known.signers, culprits: [] });
      return;
    }
    const message = batchMessage(root, this.cluster.merkleDepth);
    const servicePublicKey = fromHex(this.cluster.servicePublicKey);
    let entries = [...m.entries()];
    const culprits: number[] = [];
    let signature = combine(
      entries.slice(0, t).map(([i, c]) => ({ index: i + 1, signature: c.partial })),
      t,
    );
    if (!verify(servicePublicKey, message, signature)) {
      // Optimistic combine failed: check partials one by one and drop the bad ones.
      entries = entries.filter(([i, c]) => {
        const ok = verifyPartial(fromHex(this.cluster.replicas[i]!.sharePublicKey), message, c.partial);
        if (!ok) {
          culprits.push(i);
          m.delete(i);
        }
        return ok;
      });
      if (entries.length < t) return;
      signature = combine(
        entries.slice(0, t).map(([i, c]) => ({ index: i + 1, signature: c.partial })),
        t,
      );
      if (!verify(servicePublicKey, message, signature)) return;
    }
    const [, first] = entries[0]!;
    this.verifiedRoots.set(rootHex, { signature, signers: entries.slice(0, t).map(([i]) => i) });
    if (this.verifiedRoots.size > 4096) this.verifiedRoots.delete(this.verifiedRoots.keys().next().value as string);
    this.finish(digest, p);
    p.resolve({
      digest,
      seq: first.seq,
      reply: decodeReply(first.reply),
      replyBytes: first.reply,
      proof: first.proof,
      signature,
      root,
      signers: entries.slice(0, t).map(([i]) => i),
      culprits,
    });
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearInterval(p.timer);
    this.pending.clear();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.server?.close();
  }
}
