import { LinkKey } from '../../src/transport/link-key.js';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { fromHex, toHex } from '../../src/codec/binary.js';
import { decodeReply, digestOf, encodeReply, encodeRequest, leafHash, type CanonicalReply } from '../../src/codec/canonical.js';
import { batchMessage, buildTree, rootFromProof } from '../../src/codec/merkle.js';
import { sha256 } from '../../src/crypto/hash.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { combine, partialSign } from '../../src/crypto/threshold.js';
import { encodeFrame, MessageKind, type FrameMessage } from '../../src/transport/frame.js';
import { FRAME_PATH, Link } from '../../src/transport/link.js';
import { listenAddress, startPeerServer, type PeerServer } from '../../src/transport/peer-server.js';
import { decodeSignedReply, encodeSignedReply } from '../../src/wire/payloads.js';
import type { SignedReply } from '../../src/reply/signed-reply.js';
import type { TestCluster } from './helpers.js';

/**
 * A Byzantine firewall node as a test double: it holds the real identity key of its position (so
 * its frames authenticate), accepts anything from anyone in the chain, and does whatever the test
 * tells it: pass messages on, hold them, rewrite them, replay them, or make new ones.
 */
export interface ByzantineNode {
  readonly id: string;
  /** Request payloads received from below, in order. */
  readonly fromBelow: Uint8Array[];
  /** Reply/Fail messages received from above, in order. */
  readonly fromAbove: FrameMessage[];
  /** Forward requests up as they come (default true). */
  forwardUp: boolean;
  /** Pass replies down as they come (default true); when false they are only recorded. */
  passDown: boolean;
  sendDown(kind: MessageKind, payload: Uint8Array): void;
  sendUp(kind: MessageKind, payload: Uint8Array): void;
  /** Posts one hand-made frame to the lower neighbour; returns the HTTP status it got. */
  postFrameDown(messages: FrameMessage[], counter?: number): Promise<{ status: number; frame: Uint8Array }>;
  postRawDown(frame: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

export async function startByzantine(tc: TestCluster, chain: number, position: number): Promise<ByzantineNode> {
  const nodes = tc.cluster.chains[chain]!;
  const me = nodes[position]!;
  const lower = nodes[position - 1];
  const upper = nodes[position + 1];
  const k = tc.keys.find((x) => x.id === me.id)!;
  const signer = new IdentitySigner(fromHex(k.identitySecretKey));
  const up = upper ? new Link({ url: upper.peerUrl, from: me.id, to: upper.id, signer, peerPublicKey: fromHex(upper.identityPublicKey), minBackoffMs: 20 }) : undefined;
  const down = lower ? new Link({ url: lower.peerUrl, from: me.id, to: lower.id, signer, peerPublicKey: fromHex(lower.identityPublicKey), minBackoffMs: 20 }) : undefined;
  const senders = new Map(nodes.filter((n) => n.id !== me.id).map((n) => [n.id, fromHex(n.identityPublicKey)]));
  const session = randomBytes(16);
  let counter = 1_000_000;
  const node: ByzantineNode = {
    id: me.id,
    fromBelow: [],
    fromAbove: [],
    forwardUp: true,
    passDown: true,
    sendDown: (kind, payload) => void down!.send(kind, payload),
    sendUp: (kind, payload) => void up!.send(kind, payload),
    async postFrameDown(messages, c = counter++) {
      const frame = encodeFrame({ from: me.id, to: lower!.id, session, sessionStart: Date.now(), counter: c }, messages, LinkKey.derive(signer, fromHex(lower!.identityPublicKey), me.id, lower!.id));
      return { status: await node.postRawDown(frame), frame };
    },
    async postRawDown(frame) {
      const res = await request(lower!.peerUrl + FRAME_PATH, { method: 'POST', body: frame });
      await res.body.dump();
      return res.statusCode;
    },
    async close() {
      await Promise.all([server.close(), up?.close(), down?.close()]);
    },
  };
  const addr = listenAddress(me.peerUrl);
  const server: PeerServer = await startPeerServer({
    host: addr.host,
    port: addr.port,
    self: me.id,
    senders,
    identity: signer,
    allowed: () => true,
    onMessages: (_from, messages) => {
      for (const m of messages) {
        if (m.kind === MessageKind.Request) {
          node.fromBelow.push(m.payload);
          if (node.forwardUp) up?.send(m.kind, m.payload);
        } else {
          node.fromAbove.push(m);
          if (node.passDown) down?.send(m.kind, m.payload);
        }
      }
    },
  });
  return node;
}

/** Rewrites the canonical reply inside a Reply payload (the signature no longer matches). */
export function tamperReply(payload: Uint8Array, change: (r: CanonicalReply) => CanonicalReply): Uint8Array {
  const signed = decodeSignedReply(payload, 1 << 26);
  const reply = change(decodeReply(signed.reply));
  return encodeSignedReply({ ...signed, reply: encodeReply(reply) });
}

export function digestOfReplyPayload(payload: Uint8Array): string {
  return toHex(decodeReply(decodeSignedReply(payload, 1 << 26).reply).requestDigest);
}

/** The same reply with a signature combined from only `count` partials (fewer than s+1). */
export function underSigned(tc: TestCluster, payload: Uint8Array, count: number): Uint8Array {
  const signed = decodeSignedReply(payload, 1 << 26);
  const root = rootFromProof(leafHash(signed.reply), signed.proof, tc.cluster.merkleDepth);
  const msg = batchMessage(root, tc.cluster.merkleDepth);
  const partials = tc.cluster.replicas.slice(0, count).map((r) => {
    const k = tc.keys.find((x) => x.id === r.id)!;
    return { index: r.shareIndex, signature: partialSign({ index: r.shareIndex, secretKey: fromHex(k.shareSecretKey!) }, msg) };
  });
  // Interpolating over `count` points as if the threshold were `count`: a wrong group signature.
  return encodeSignedReply({ ...signed, signature: combine(partials, count) });
}

/** Genuinely signed replies (s+1 shares) for the given canonical requests, one batch. */
export function signBatch(tc: TestCluster, requests: Uint8Array[], reply: (i: number) => Omit<CanonicalReply, 'requestDigest'>): Array<{ digestHex: string; payload: Uint8Array; signed: SignedReply }> {
  const depth = tc.cluster.merkleDepth;
  const replies = requests.map((r, i) => encodeReply({ ...reply(i), requestDigest: digestOf(r) }));
  const tree = buildTree(replies.map(leafHash), depth, sha256(randomBytes(32)));
  const msg = batchMessage(tree.root, depth);
  const partials = tc.cluster.replicas.slice(0, tc.cluster.s + 1).map((r) => {
    const k = tc.keys.find((x) => x.id === r.id)!;
    return { index: r.shareIndex, signature: partialSign({ index: r.shareIndex, secretKey: fromHex(k.shareSecretKey!) }, msg) };
  });
  const signature = combine(partials, tc.cluster.s + 1);
  return replies.map((r, i) => {
    const signed = { reply: r, proof: tree.proof(i), signature };
    return { digestHex: toHex(digestOf(requests[i]!)), payload: encodeSignedReply(signed), signed };
  });
}

export function forgedRequest(target = '/forged'): Uint8Array {
  return encodeRequest({ nonce: randomBytes(16), method: 'GET', target, headers: [], body: new Uint8Array(0) });
}
