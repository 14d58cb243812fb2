import type { ResponseParts } from './verify-response.js';

export class DumpError extends Error {}

const STATUS_RE = /^HTTP\/(\d(?:\.\d)?) (\d{3})(?: .*)?$/;

/**
 * Parses the output of `curl -si` (or `curl -i`): status line, header lines, blank line, body.
 * Accepts CRLF or LF line ends, skips interim 1xx blocks (e.g. `100 Continue`), and keeps the body
 * as raw bytes. Throws DumpError when the input is not an HTTP response at all.
 */
export function parseCurlDump(input: Uint8Array): ResponseParts & { declaredLength: number | undefined } {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  let pos = 0;
  for (;;) {
    const head = readHead(buf, pos);
    if (!head) throw new DumpError('no HTTP status line and header block found (expected the output of curl -si)');
    const [statusLine, ...lines] = head.lines;
    const m = STATUS_RE.exec(statusLine ?? '');
    if (!m) throw new DumpError(`not an HTTP status line: ${JSON.stringify((statusLine ?? '').slice(0, 80))}`);
    const status = Number(m[2]);
    pos = head.end;
    if (status >= 100 && status < 200) continue;
    const headers: Array<[string, string]> = [];
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new DumpError(`not a header line: ${JSON.stringify(line.slice(0, 80))}`);
      headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
    const body = new Uint8Array(buf.subarray(pos));
    const cl = headers.find(([n]) => n.toLowerCase() === 'content-length');
    const declaredLength = cl ? Number(cl[1]) : undefined;
    return { status, headers, body, declaredLength };
  }
}

function readHead(buf: Buffer, start: number): { lines: string[]; end: number } | undefined {
  // The head ends at the first empty line (CRLF CRLF or LF LF, mixed allowed).
  let i = start;
  let lineStart = start;
  const lines: string[] = [];
  while (i < buf.length) {
    if (buf[i] === 0x0a) {
      let lineEnd = i;
      if (lineEnd > lineStart && buf[lineEnd - 1] === 0x0d) lineEnd--;
      const line = buf.toString('latin1', lineStart, lineEnd);
      i++;
      if (line === '') {
        if (lines.length === 0) {
          lineStart = i;
          continue; // blank lines before a status line
        }
        return { lines, end: i };
      }
      lines.push(line);
      lineStart = i;
    } else {
      i++;
    }
  }
  return undefined;
}
