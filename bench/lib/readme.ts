import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/up/local-cluster.js';

/** Replaces what lies between `<!-- NAME:start -->` and `<!-- NAME:end -->` in README.md. */
export async function replaceReadmeSection(name: string, content: string): Promise<string> {
  const path = join(PACKAGE_ROOT, 'README.md');
  const text = await readFile(path, 'utf8');
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`README.md has no ${start} … ${end} markers`);
  await writeFile(path, text.slice(0, a + start.length) + '\n' + content.trim() + '\n' + text.slice(b));
  return path;
}
