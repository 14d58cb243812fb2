import { randomBytes } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, digestOf, encodeRequest, leafHash } from '../../src/codec/canonical.js';
import { batchMessage, rootFromProof } from '../../src/codec/merkle.js';
import type { ClusterConfig } from '../../src/cluster/config.js';
import type { NodeKeys } from '../../src/cluster/keys.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { combine, verify } from '../../src/crypto/threshold.js';
import { MessageKind } from '../../src/transport/frame.js';
import { Link } from '../../src/transport/link.js';
import { startPeerServer, type PeerServer } from '../../src/transport/peer-server.js';
import { decodePartialReplies } from '../../src/wire/payloads.js';
import { signSubmission } from '../../src/wire/submission.js';

/** A canonical request with a fresh nonce. */
export function canonicalRequest(method: string, target: string, body = ''): Uint8Array {
  return encodeRequest({ nonce: new Uint8Array(randomBytes(16)), method, target, headers: [], body: utf8(body) });
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
  sealed: Uint8Array;
  byRoot: Map<string, Map<number, Uint8Array>>;
  timer: NodeJS.Timeout;
  waitedMs: number;
}

/**
 * Plays the top firewall node of chain 0 against real sidecars (the `sidecar` bench suite): a
 * real peer server and real links with the top's keys; each request goes to the primary (from
 * the views the replicas report) and to every replica after `retransmitMs`; it completes once
 * s+1 replicas sent partials for the same batch root, optionally combined and verified (noble,
 * inline) like a real top. A simplified copy of the TopClient of test/sidecar/helpers.ts.
 */
export class BenchTopClient {
  readonly id: string;
  private server: PeerServer | undefined;
  private readonly links = new Map<number, Link>();
  private readonly signer: IdentitySigner;
  private readonly pending = new Map<string, Pending>();
  private readonly verifiedRoots = new Set<string>();
  private view = 0;
  retransmissions = 0;

  constructor(
    private readonly cluster: ClusterConfig,
    keys: NodeKeys[],
    private readonly retransmitMs = 2_000,
    private readonly checkSignatures = false,
  ) {
    const top = cluster.chains[0]![cluster.chains[0]!.length - 1]!;
    this.id = top.id;
    const k = keys.find((x) => x.id === top.id)!;
    this.signer = new IdentitySigner(fromHex(k.identitySecretKey));
    for (const r of cluster.replicas) this.links.set(r.index, new Link({ url: r.url, from: top.id, to: r.id, signer: this.signer, maxBackoffMs: 500 }));
  }

  async start(): Promise<void> {
    const top = this.cluster.chains[0]![this.cluster.chains[0]!.length - 1]!;
    this.server = await startPeerServer({
      host: '127.0.0.1',
      port: Number(new URL(top.peerUrl).port),
      self: this.id,
      senders: new Map(this.cluster.replicas.map((r) => [r.id, fromHex(r.identityPublicKey)])),
      allowed: (from, kind) => kind === MessageKind.Partial && from.startsWith('replica-'),
      onMessages: (from, messages) => {
        const index = Number(from.slice('replica-'.length));
        for (const m of messages) this.onPartial(index, m.payload);
      },
    });
  }

  submit(payload: Uint8Array, timeoutMs = 60_000): Promise<void> {
    const digest = toHex(digestOf(payload));
    const sealed = signSubmission(this.signer, this.id, payload);
    return new Promise<void>((resolve, reject) => {
      const p: Pending = {
        resolve,
        reject,
        sealed,
        byRoot: new Map(),
        waitedMs: 0,
        timer: setInterval(() => {
          p.waitedMs += this.retransmitMs;
          if (p.waitedMs >= timeoutMs) {
            clearInterval(p.timer);
            this.pending.delete(digest);
            reject(new Error(`no reply for ${digest} within ${timeoutMs} ms`));
            return;
          }
          this.retransmissions++;
          for (const link of this.links.values()) link.send(MessageKind.Request, sealed);
        }, this.retransmitMs),
      };
      this.pending.set(digest, p);
      this.links.get(this.view % this.cluster.replicas.length)!.send(MessageKind.Request, sealed);
    });
  }

  private onPartial(from: number, payload: Uint8Array): void {
    let msg;
    try {
      msg = decodePartialReplies(payload, 64 * 1024 * 1024);
    } catch {
      return;
    }
    if (msg.view > this.view) this.view = msg.view;
    for (const item of msg.items) {
      let digest: string;
      let rootHex: string;
      let root: Uint8Array;
      try {
        digest = toHex(decodeReply(item.reply).requestDigest);
        root = rootFromProof(leafHash(item.reply), item.proof, this.cluster.merkleDepth);
        rootHex = toHex(root);
      } catch {
        continue;
      }
      const p = this.pending.get(digest);
      if (!p) continue;
      let m = p.byRoot.get(rootHex);
      if (!m) p.byRoot.set(rootHex, (m = new Map()));
      m.set(from, msg.partial);
      const t = this.cluster.s + 1;
      if (m.size < t) continue;
      if (this.checkSignatures && !this.verifiedRoots.has(rootHex)) {
        const sig = combine(
          [...m.entries()].slice(0, t).map(([i, s]) => ({ index: i + 1, signature: s })),
          t,
        );
        if (!verify(fromHex(this.cluster.servicePublicKey), batchMessage(root, this.cluster.merkleDepth), sig)) continue;
        this.verifiedRoots.add(rootHex);
        if (this.verifiedRoots.size > 4096) this.verifiedRoots.delete(this.verifiedRoots.values().next().value as string);
      }
      clearInterval(p.timer);
      this.pending.delete(digest);
      p.resolve();
    }
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearInterval(p.timer);
    this.pending.clear();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.server?.close();
  }
}
