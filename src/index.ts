/**
 * The package's public API. `threshold` is the threshold BLS12-381 signature scheme the replicas
 * use; the rest are the encodings and checks a client needs to verify a reply on its own.
 */
import { combine, deal, partialSign, verify, verifyPartial } from './crypto/threshold.js';

/**
 * Threshold BLS12-381 signatures (keys in G2, signatures in G1):
 * - `deal(threshold, count)`: trusted-dealer shares of a fresh key, any `threshold` of which sign.
 * - `partialSign(share, message)`: one share's partial signature.
 * - `verifyPartial(sharePublicKey, message, partial)`, `verify(publicKey, message, signature)`:
 *   true or false, never throw; keys outside the prime-order subgroup are invalid.
 * - `combine(partials, threshold)`: the group signature from at least `threshold` partials with
 *   distinct share indices. `threshold` is required: fewer partials throw a CbftError
 *   (CBFT_ERR_THRESHOLD) instead of yielding a wrong signature; more are fine (same bytes).
 */
export const threshold = { deal, partialSign, verifyPartial, combine, verify } as const;
export type { Share, Dealt, Partial } from './crypto/threshold.js';
export { CbftError, ErrorCodes } from './errors.js';
export { encodeRequest, decodeRequest, encodeReply, decodeReply, digestOf, leafHash } from './codec/canonical.js';
export type { CanonicalRequest, CanonicalReply } from './codec/canonical.js';
export { buildTree, rootFromProof, batchMessage } from './codec/merkle.js';
export { ReplyVerifier } from './reply/signed-reply.js';
export type { SignedReply, ReplyCheck } from './reply/signed-reply.js';
export { validateCluster } from './cluster/config.js';
export type { ClusterConfig } from './cluster/config.js';
export { loadCluster } from './cluster/keys.js';
export { createClient, CLIENT_ERROR, CLIENT_REFUSED } from './client/client.js';
export type { CbftClient, ClientOptions, ClientRequest, VerifiedResponse } from './client/client.js';
export { ResponseVerifier } from './client/verify-response.js';
export type { ResponseParts, ResponseCheck } from './client/verify-response.js';
export { parseCurlDump } from './client/curl-dump.js';
export { startFirewallNode } from './firewall/node.js';
export type { FirewallNode, FirewallNodeOptions, FirewallRole } from './firewall/node.js';
