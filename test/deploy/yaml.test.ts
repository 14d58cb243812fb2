import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toYaml, type Json } from '../../src/cluster/kubernetes.js';
import { parseYamlDocuments } from './yaml.js';

/**
 * The YAML writer of src/cluster/kubernetes.ts against the strict reader the manifest tests use:
 * whatever the writer produces reads back as the same value, and the reader refuses the plain
 * scalars YAML 1.1 and 1.2 readers disagree on (so a writer that emitted one would fail here).
 */

const TRICKY = [
  '', ' ', 'yes', 'No', 'ON', 'off', 'y', 'N', 'true', 'False', 'null', 'Null', '~', '0600', '0o600', '0x1F', '1e3', '1_000', '.5', '-1', '+1', '12:30', '2001-12-14',
  '.inf', '-.Inf', '.NaN', '-', '- a', '-a', '--flag', 'a: b', 'a:b', 'a #b', '#x', 'a#b', ' lead', 'trail ', ':', '?', '? x', '*a', '&a', '!tag', '|', '>', '|-', '"q"', "'s'",
  '%x', '@x', '`x', '{}', '[]', '{a: 1}', '---', '...', '<<', '=', 'a\n', 'a\n\n', '\n', '\n\n', 'a\nb', ' a\nb', 'a\n b', 'a\n\n\nb\n', '\ta\nb', 'a\tb\n', 'a\r\nb', 'a\u2028b',
  'a\x85b', 'a\x7fb', '\ufeffa', 'a \n b', 'a\n \nb', 'a\n---\nb', 'a\n...\n', '# c\nd', 'key: |\n x', 'ü\n✓\n', '😀\nx', '\\', '\\n', '"', 'http://127.0.0.1:3000', '/etc/cbft',
];

const key = fc.oneof(fc.string(), fc.constantFrom(...TRICKY), fc.string({ unit: 'binary', maxLength: 8 }));
const scalar: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(...TRICKY),
  fc.array(fc.constantFrom('a', 'b ', ' ', '\n', '\t', ':', '#', '-', '"', "'", '|'), { maxLength: 12 }).map((a) => a.join('')),
);
const { value } = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  ),
}));

const doc = (v: Json) => ({ object: { apiVersion: 'v1', kind: 'Test', metadata: { name: 'x' }, value: v } });

describe('YAML writer and reader', () => {
  it('tricky strings read back as themselves, as values and as keys', () => {
    for (const s of TRICKY) {
      const object = { apiVersion: 'v1', kind: 'Test', metadata: { name: 'x' }, value: s, list: [s, { [s]: s }], map: { [s]: [s] } };
      const text = toYaml([{ object }]);
      expect(parseYamlDocuments(text), JSON.stringify(s) + '\n' + text).toEqual([object]);
    }
  });

  it('any value reads back as itself (property)', () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 3 }), (values) => {
        const docs = values.map(doc);
        expect(parseYamlDocuments(toYaml(docs, 'header\n\nwith a blank line'))).toEqual(docs.map((d) => d.object));
      }),
      { numRuns: 500 },
    );
  });

  it('multi-line strings become literal blocks, single-line ones stay on their line', () => {
    const text = toYaml([{ comment: 'c', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { 'a.json': '{\n  "a": 1\n}\n', b: 'x\ny', port: '8080', num: 8080, n: 'n' } } }]);
    expect(text).toBe(
      [
        '# c',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: x',
        'data:',
        '  a.json: |',
        '    {',
        '      "a": 1',
        '    }',
        '  b: |-',
        '    x',
        '    y',
        '  port: "8080"',
        '  num: 8080',
        '  "n": "n"',
        '',
      ].join('\n'),
    );
  });

  it('the reader refuses what readers disagree on or it does not support', () => {
    for (const bad of ['a: yes', 'a: 0600', 'a: 1e3', 'a: True', "a: 'x'", 'a: &x 1', 'a: b: c', 'a:\n\tb: 1', 'a: 1\na: 2', 'a: [1, 2]', 'a:', 'a: x # c', '- a\nb: 1', 'a: "\\x41"']) {
      expect(() => parseYamlDocuments(bad + '\n'), bad).toThrow();
    }
  });
});
