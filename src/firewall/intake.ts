import { toHex } from '../codec/binary.js';
import { decodeReply, leafHash, type CanonicalReply, type DecodeLimits } from '../codec/canonical.js';
import { rootFromProof } from '../codec/merkle.js';
import type { SignedReply } from '../reply/signed-reply.js';
import type { RootVerifier } from './crypto-pool.js';
import { decodeFail, decodeSignedReply } from '../wire/payloads.js';
import type { FirewallMetrics } from './metrics.js';
import type { ReleaseQueue } from './queue.js';

export interface IntakeOptions {
  queue: ReleaseQueue<unknown>;
  verifier: RootVerifier;
  metrics: FirewallMetrics;
  depth: number;
  /** Largest Reply payload accepted (canonical reply + proof + signature). */
  maxReplyBytes: number;
  replyLimits: DecodeLimits;
}

/**
 * What a bottom or middle node does with a message from its upper neighbour (Figure 4, "Reply"):
 * decode strictly, find a waiting entry for the digest the reply names (before any pairing, so
 * garbage for unknown digests costs nothing), check the Merkle proof and the threshold signature
 * against the service key (cached per batch root), and only then hold it as pending. Anything
 * else is dropped and counted as an alarm.
 */
export class Intake {
  constructor(private readonly o: IntakeOptions) {}

  reply(from: string, payload: Uint8Array): void {
    const { metrics, queue } = this.o;
    let signed: SignedReply;
    let reply: CanonicalReply;
    let root: Uint8Array;
    try {
      signed = decodeSignedReply(payload, this.o.maxReplyBytes);
      reply = decodeReply(signed.reply, this.o.replyLimits);
    } catch {
      metrics.alarm('malformed-reply', from);
      return;
    }
    const digestHex = toHex(reply.requestDigest);
    if (!queue.isWaiting(digestHex)) {
      this.unknown(from, digestHex, 'reply');
      return;
    }
    try {
      root = rootFromProof(leafHash(signed.reply), signed.proof, this.o.depth);
    } catch {
      metrics.alarm('malformed-reply', from, { digest: digestHex });
      return;
    }
    if (this.o.verifier.known(root, signed.signature)) {
      queue.resolveOne(digestHex, { kind: 'reply', signed, reply, payload });
      return;
    }
    // The pairing check runs off the event loop; the queue keeps the release order meanwhile.
    void this.o.verifier.check(root, signed.signature).then((ok) => {
      if (!ok) {
        metrics.alarm('bad-signature', from, { digest: digestHex });
        return;
      }
      if (!queue.resolveOne(digestHex, { kind: 'reply', signed, reply, payload })) this.unknown(from, digestHex, 'reply');
    });
  }

  fail(from: string, payload: Uint8Array): void {
    const { metrics, queue } = this.o;
    let fail;
    try {
      fail = decodeFail(payload);
    } catch {
      metrics.alarm('malformed-fail', from);
      return;
    }
    const digestHex = toHex(fail.digest);
    if (!queue.isWaiting(digestHex)) {
      this.unknown(from, digestHex, 'fail');
      return;
    }
    queue.resolveOne(digestHex, { kind: 'fail', code: fail.code });
  }

  private unknown(from: string, digestHex: string, what: 'reply' | 'fail'): void {
    const cls = this.o.queue.classify(digestHex);
    if (cls === 'late') {
      this.o.metrics.late.inc();
      return;
    }
    if (cls === 'replayed') this.o.metrics.alarm(what === 'reply' ? 'replayed-reply' : 'replayed-fail', from, { digest: digestHex });
    else this.o.metrics.alarm(what === 'reply' ? 'unknown-digest' : 'unknown-fail', from, { digest: digestHex });
  }
}
