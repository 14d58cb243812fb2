/**
 * A strict reader for the YAML that cbft writes (src/cluster/kubernetes.ts `toYaml`): block
 * mappings and sequences indented by spaces, full-line comments, `---` between documents, plain
 * and double-quoted scalars, literal blocks (`|`, `|-`), `{}` and `[]`. Anything else, and any
 * plain scalar that YAML 1.1 and 1.2 readers would not read the same way (`yes`, `0600`, `1e3`,
 * `True`, ...), is an error with its line number, so the test fails instead of guessing.
 */

type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

interface Line {
  no: number;
  indent: number;
  text: string;
}

export class YamlError extends Error {}

const fail = (line: Line | undefined, message: string): never => {
  throw new YamlError(line ? `line ${line.no}: ${message}: ${JSON.stringify(line.text)}` : message);
};

const INT_RE = /^-?(0|[1-9][0-9]*)$/;
const AMBIGUOUS_RE = /^(?:y|n|yes|no|on|off|true|false|null|~)$/i;
const NUMBERISH_RE = /^(?:[-+]?[0-9]|[-+]?\.[0-9]|[-+]?\.(?:inf|nan)$)/i;
const INDICATOR_RE = /^[?:,[\]{}#&*!|>'"%@`]/;

function plainScalar(text: string, line: Line): Value {
  if (text === 'null' || text === '~') return null;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (AMBIGUOUS_RE.test(text)) fail(line, 'ambiguous plain scalar (YAML 1.1 and 1.2 differ)');
  if (NUMBERISH_RE.test(text)) {
    if (INT_RE.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
    fail(line, 'number-like plain scalar that readers disagree on');
  }
  if (INDICATOR_RE.test(text) || /^-(\s|$)/.test(text)) fail(line, 'plain scalar starts with an indicator');
  if (/:(\s|$)/.test(text) || /\s#/.test(text) || /\s$/.test(text)) fail(line, 'unsupported plain scalar');
  return text;
}

/** Length of a double-quoted scalar at the start of `text`, including both quotes. */
function quotedLength(text: string, line: Line): number {
  for (let i = 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return fail(line, 'unterminated double-quoted scalar');
}

function quoted(text: string, line: Line): string {
  // YAML's double-quoted style is a superset of JSON strings; accept only the JSON part.
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'string') return v;
  } catch {
    // fall through
  }
  return fail(line, 'double-quoted scalar outside the JSON subset');
}

function scalar(text: string, line: Line): Value {
  if (text === '{}') return {};
  if (text === '[]') return [];
  if (text.startsWith('"')) {
    if (quotedLength(text, line) !== text.length) fail(line, 'text after a quoted scalar');
    return quoted(text, line);
  }
  return plainScalar(text, line);
}

/** Splits `key: rest` (rest may be empty); undefined when the text is not a mapping entry. */
function splitKey(text: string, line: Line): { key: string; rest: string } | undefined {
  if (text.startsWith('"')) {
    const n = quotedLength(text, line);
    if (text[n] !== ':' || (n + 1 < text.length && text[n + 1] !== ' ')) return undefined;
    return { key: quoted(text.slice(0, n), line), rest: text.slice(n + 1).trim() };
  }
  const m = /^([^\s:#"'][^:]*?):(?: (.*)|)$/.exec(text);
  if (!m) return undefined;
  const key = plainScalar(m[1]!, line);
  if (typeof key !== 'string') fail(line, 'mapping key must be a string');
  return { key: key as string, rest: (m[2] ?? '').trim() };
}

class Reader {
  i = 0;
  constructor(private readonly raw: string[], private readonly lines: Line[]) {}

  peek(): Line | undefined {
    return this.lines[this.i];
  }

  block(indent: number): Value {
    const first = this.peek();
    if (!first || first.indent !== indent) return fail(first, `expected a block at indentation ${indent}`);
    return first.text === '-' || first.text.startsWith('- ') ? this.sequence(indent) : this.mapping(indent);
  }

  /** The value after `key:` or `-` with nothing on the line: a more indented block. */
  nested(parent: Line, indent: number): Value {
    const next = this.peek();
    if (!next || next.indent <= indent) return fail(parent, 'empty value (write null, {} or [] instead)');
    return this.block(next.indent);
  }

  value(rest: string, line: Line, indent: number): Value {
    if (rest === '') return this.nested(line, indent);
    if (rest === '|' || rest === '|-') return this.literal(rest === '|', line, indent);
    return scalar(rest, line);
  }

  mapping(indent: number): Value {
    const out: { [key: string]: Value } = {};
    for (let line = this.peek(); line && line.indent === indent; line = this.peek()) {
      if (line.text === '-' || line.text.startsWith('- ')) fail(line, 'sequence entry inside a mapping');
      const kv = splitKey(line.text, line);
      if (!kv) return fail(line, 'expected `key: value`');
      if (Object.prototype.hasOwnProperty.call(out, kv.key)) fail(line, `duplicate key ${JSON.stringify(kv.key)}`);
      this.i++;
      out[kv.key] = this.value(kv.rest, line, indent);
    }
    const after = this.peek();
    if (after && after.indent > indent) fail(after, 'unexpected indentation');
    return out;
  }

  sequence(indent: number): Value {
    const out: Value[] = [];
    for (let line = this.peek(); line && line.indent === indent; line = this.peek()) {
      if (line.text !== '-' && !line.text.startsWith('- ')) fail(line, 'expected a sequence entry');
      const item = line.text === '-' ? '' : line.text.slice(2);
      if (item.startsWith(' ')) fail(line, 'more than one space after `-`');
      if (item !== '' && item !== '|' && item !== '|-' && splitKey(item, line)) {
        // A mapping whose first entry sits on the dash's line: read it as if it began on its own line.
        this.lines[this.i] = { no: line.no, indent: indent + 2, text: item };
        out.push(this.mapping(indent + 2));
      } else {
        this.i++;
        out.push(this.value(item, line, indent));
      }
    }
    const after = this.peek();
    if (after && after.indent > indent) fail(after, 'unexpected indentation');
    return out;
  }

  /** A literal block; blank lines are content (they were skipped when lines were collected, so re-read raw). */
  literal(keep: boolean, line: Line, indent: number): string {
    const startRaw = line.no; // raw index of the line after the header (line numbers are 1-based)
    const content: string[] = [];
    let contentIndent = -1;
    let r = startRaw;
    for (; r < this.raw.length; r++) {
      const text = this.raw[r]!;
      if (text.trim() === '') {
        if (text !== '') fail({ no: r + 1, indent: 0, text }, 'blank line with spaces in a literal block');
        content.push('');
        continue;
      }
      const ind = text.length - text.trimStart().length;
      if (contentIndent < 0) {
        if (ind <= indent) break;
        contentIndent = ind;
      }
      if (ind < contentIndent) break;
      content.push(text.slice(contentIndent));
    }
    if (contentIndent < 0) fail(line, 'empty literal block');
    while (content.length > 0 && content[content.length - 1] === '') content.pop();
    // Skip the structural lines the literal block consumed.
    while (this.peek() && this.peek()!.no <= r) this.i++;
    return content.join('\n') + (keep ? '\n' : '');
  }
}

function structuralLines(raw: string[], from: number, to: number): Line[] {
  const lines: Line[] = [];
  for (let r = from; r < to; r++) {
    const text = raw[r]!;
    if (/^\s*(#|$)/.test(text)) continue;
    if (/^ *\t/.test(text)) fail({ no: r + 1, indent: 0, text }, 'tab in indentation');
    if (/\s$/.test(text)) fail({ no: r + 1, indent: 0, text }, 'trailing whitespace');
    const indent = text.length - text.trimStart().length;
    lines.push({ no: r + 1, indent, text: text.slice(indent) });
  }
  return lines;
}

/** Every document of a YAML stream; documents holding only comments are left out. */
export function parseYamlDocuments(text: string): Value[] {
  if (text.includes('\r')) throw new YamlError('CR line breaks are not supported');
  const raw = text.split('\n');
  if (raw[raw.length - 1] === '') raw.pop();
  const docs: Value[] = [];
  let start = 0;
  const flush = (end: number) => {
    // Lines inside literal blocks may look like comments or blanks: let the reader see raw lines.
    const lines = structuralLinesAware(raw, start, end);
    if (lines.length > 0) {
      const reader = new Reader(raw, lines);
      const v = reader.block(0);
      const rest = reader.peek();
      if (rest) fail(rest, 'unexpected text after the document');
      docs.push(v);
    }
  };
  for (let r = 0; r < raw.length; r++) {
    if (raw[r] === '---') {
      flush(r);
      start = r + 1;
    } else if (raw[r]!.startsWith('---') || raw[r]!.startsWith('...')) {
      fail({ no: r + 1, indent: 0, text: raw[r]! }, 'unsupported document marker');
    }
  }
  flush(raw.length);
  return docs;
}

/**
 * Structural lines, except that the lines of a literal block are taken verbatim (a `#` or a blank
 * line there is content). A literal block is a `key: |`/`- |` line followed by lines indented more.
 */
function structuralLinesAware(raw: string[], from: number, to: number): Line[] {
  const out: Line[] = [];
  let r = from;
  while (r < to) {
    const [line] = structuralLines(raw, r, r + 1);
    r++;
    if (!line) continue;
    out.push(line);
    const itemLiteral = line.text === '- |' || line.text === '- |-';
    if (itemLiteral || /: \|-?$/.test(line.text)) {
      // Literal content: every following line that is blank or indented more than the node that
      // owns the block (for `- key: |`, the mapping that starts after the dash).
      const owner = !itemLiteral && line.text.startsWith('- ') ? line.indent + 2 : line.indent;
      while (r < to && (raw[r] === '' || raw[r]!.length - raw[r]!.trimStart().length > owner)) {
        out.push({ no: r + 1, indent: Number.POSITIVE_INFINITY, text: raw[r]! });
        r++;
      }
    }
  }
  return out;
}
