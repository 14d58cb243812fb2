import { readFile } from 'node:fs/promises';
import { loadCluster } from '../../cluster/keys.js';
import { DumpError, parseCurlDump } from '../../client/curl-dump.js';
import { ResponseVerifier } from '../../client/verify-response.js';
import { CbftError } from '../../errors.js';
import { parseCommand, requireOption } from '../args.js';

export const usage = `cbft verify --cluster DIR [FILE|-]

Checks a response saved with \`curl -si\` (from FILE, or standard input for - or no FILE): the
status, the allowlisted headers and the body must carry a valid threshold signature of the service
(cbft-signature, cbft-proof) for the request named by cbft-request-digest.
Exit status: 0 valid, 1 invalid (the reason is printed), 2 unusable input.`;

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { cluster: { type: 'string' } }, true);
  const dir = requireOption(values.cluster, '--cluster');
  if (positionals.length > 1) {
    process.stderr.write(`cbft verify: at most one FILE, got ${positionals.length}\n`);
    return 2;
  }
  const file = positionals[0] ?? '-';
  let cluster;
  try {
    cluster = await loadCluster(dir);
  } catch (err) {
    process.stderr.write(`cbft verify: ${(err as Error).message}\n`);
    return 2;
  }
  let input: Buffer;
  try {
    input = file === '-' ? await readStdin() : await readFile(file);
  } catch (err) {
    process.stderr.write(`cbft verify: cannot read ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  let parts;
  try {
    parts = parseCurlDump(input);
  } catch (err) {
    if (err instanceof DumpError || err instanceof CbftError) {
      process.stderr.write(`cbft verify: unusable input: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const invalid = (reason: string) => {
    process.stdout.write(`INVALID: ${reason}\n`);
    return 1;
  };
  if (parts.declaredLength !== undefined && parts.declaredLength !== parts.body.length) {
    return invalid(`the body has ${parts.body.length} bytes but content-length says ${parts.declaredLength} (a HEAD response or a truncated dump cannot be verified)`);
  }
  const res = new ResponseVerifier(cluster).check(parts);
  if (!res.ok) return invalid(res.reason);
  process.stdout.write(
    `VALID: status ${res.status}, ${res.body.length} body bytes, ${res.headers.length} signed header(s), signed by the service for request ${res.requestDigest}` +
      (res.nonce ? ` (nonce ${res.nonce})` : '') +
      '\n',
  );
  return 0;
}
