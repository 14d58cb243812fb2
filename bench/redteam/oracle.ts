import { FirewallErrors } from '../../src/firewall/front.js';
/**
 * The oracle: a model of the example bank that predicts, byte for byte, what an honest copy
 * answers to each request of the red-team workload (which runs one request at a time, so the
 * order is known). A verified reply that differs from the prediction in status, signed headers
 * or body is "wrong": either a leak got through or the replicas' agreement failed.
 */

export interface Account {
  id: string;
  owner: string;
  balance: number;
  token: string;
}

export interface Transfer {
  id: string;
  from: string;
  to: string;
  amount: number;
  currency: string;
  createdAt: string;
}

export type HeaderList = ReadonlyArray<readonly [string, string]>;

export interface Expected {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const jsonReply = (status: number, value: unknown, extra: Array<[string, string]> = []): Expected => ({
  status,
  headers: ([['cache-control', 'no-store'], ['content-type', JSON_TYPE], ...extra] as Array<[string, string]>).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
  body: JSON.stringify(value) + '\n',
});

export const errorReply = (status: number, error: string, message: string) => jsonReply(status, { error, message });

export class BankModel {
  readonly accounts = new Map<string, Account>();
  readonly transfers = new Map<string, Transfer>();
  /** Every balance each account has had, for the secret scanner. */
  readonly history = new Map<string, Set<number>>();
  /** Transfer amounts each account was a party to (the account may see them). */
  readonly seenAmounts = new Map<string, Set<number>>();

  constructor(seed: ReadonlyArray<Account>) {
    for (const a of seed) {
      this.accounts.set(a.id, { ...a });
      this.history.set(a.id, new Set([a.balance]));
      this.seenAmounts.set(a.id, new Set());
    }
  }

  account(id: string): Account {
    const a = this.accounts.get(id);
    if (!a) throw new Error(`no account ${id}`);
    return a;
  }

  getAccount(caller: string | undefined, id: string): Expected {
    if (caller === undefined) return errorReply(401, 'unauthorized', 'missing bearer token');
    if (caller !== id) return errorReply(403, 'forbidden', 'this token does not grant access to that account');
    const a = this.account(id);
    return jsonReply(200, { id: a.id, owner: a.owner, balance: a.balance, currency: 'EUR' });
  }

  /** The expected reply to a transfer, before it is known; `null` for a 201 (checked by shape). */
  transferOutcome(from: string, to: string, amount: number): Expected | null {
    if (this.account(from).balance < amount) return errorReply(409, 'insufficient_funds', 'the balance does not cover this transfer');
    return null;
  }

  /** Checks a 201 transfer reply and applies it; returns a reason when it is not what an honest copy says. */
  applyCreated(from: string, to: string, amount: number, status: number, headers: HeaderList, body: string): string | undefined {
    if (status !== 201) return `status ${status}, expected 201`;
    let t: Transfer;
    try {
      t = JSON.parse(body) as Transfer;
    } catch {
      return 'body is not JSON';
    }
    const keys = Object.keys(t).join(',');
    if (keys !== 'id,from,to,amount,currency,createdAt') return `fields ${keys}`;
    if (t.from !== from || t.to !== to || t.amount !== amount || t.currency !== 'EUR') return 'transfer fields differ from the request';
    if (!UUID_V4.test(t.id)) return `id ${t.id} is not a v4 UUID`;
    if (!ISO.test(t.createdAt)) return `createdAt ${t.createdAt} is not an ISO timestamp`;
    if (this.transfers.has(t.id)) return `transfer id ${t.id} reused`;
    const expected = jsonReply(201, t, [['location', `/transfers/${t.id}`]]);
    const why = compare(expected, status, headers, body);
    if (why) return why;
    this.apply(t);
    return undefined;
  }

  apply(t: Transfer): void {
    const a = this.account(t.from);
    const b = this.account(t.to);
    a.balance -= t.amount;
    b.balance += t.amount;
    this.history.get(a.id)!.add(a.balance);
    this.history.get(b.id)!.add(b.balance);
    this.seenAmounts.get(a.id)!.add(t.amount);
    this.seenAmounts.get(b.id)!.add(t.amount);
    this.transfers.set(t.id, t);
  }

  getTransfer(caller: string | undefined, id: string): Expected {
    if (caller === undefined) return errorReply(401, 'unauthorized', 'missing bearer token');
    const t = this.transfers.get(id);
    if (!t) return errorReply(404, 'not_found', 'no such transfer');
    if (t.from !== caller && t.to !== caller) return errorReply(403, 'forbidden', 'only the sender or the receiver may read a transfer');
    return jsonReply(200, t);
  }

  /** Replaces balances with the replicas' own (after a request whose outcome is unknown). */
  resync(balances: Record<string, number>, transfers: Transfer[]): void {
    for (const t of transfers) if (!this.transfers.has(t.id)) this.transfers.set(t.id, t);
    for (const [id, v] of Object.entries(balances)) {
      const a = this.accounts.get(id);
      if (!a) continue;
      a.balance = v;
      this.history.get(id)!.add(v);
    }
  }
}

/** Why a verified reply differs from the expected one (undefined when identical). */
export function compare(expected: Expected, status: number, headers: HeaderList, body: string): string | undefined {
  if (status !== expected.status) return `status ${status}, expected ${expected.status}`;
  const got = headers.map(([n, v]) => `${n}: ${v}`).join('\n');
  const want = expected.headers.map(([n, v]) => `${n}: ${v}`).join('\n');
  if (got !== want) return `signed headers differ: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`;
  if (body !== expected.body) return `body differs: ${JSON.stringify(body.slice(0, 120))}`;
  return undefined;
}

/** Header names a client may see on a signed reply: the allowlisted ones, cbft's, framing. */
export const RAW_HEADER_NAMES = new Set([
  'cache-control',
  'content-type',
  'location',
  'cbft-nonce',
  'cbft-proof',
  'cbft-request-digest',
  'cbft-signature',
  'content-length',
  'connection',
  'keep-alive',
]);

/** The firewall's own fixed errors (DESIGN.md: the external contract). */
export const FIREWALL_ERRORS: Readonly<Record<string, number>> = FirewallErrors;
