#!/usr/bin/env node
import { CbftError } from '../errors.js';

/**
 * `cbft <command>`: each command lives in its own module and is loaded on demand, so `cbft
 * verify` does not pay for loading the sidecar.
 */
interface Command {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number>; usage: string }>;
}

const commands: Record<string, Command> = {
  keygen: { summary: 'generate cluster.json and node keys', load: () => import('./commands/keygen.js') },
  firewall: { summary: 'run one firewall node (bottom, middle or top of a chain)', load: () => import('./commands/firewall.js') },
  verify: { summary: 'check a `curl -si` response against the service key', load: () => import('./commands/verify.js') },
  sidecar: { summary: 'run a replica sidecar in front of a legacy service copy', load: () => import('./commands/sidecar.js') },
  up: { summary: 'start a whole local cluster with the example service', load: () => import('./commands/up.js') },
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return (
    'cbft: a privacy firewall for existing HTTP services\n\nUsage: cbft <command> [options]\n\nCommands:\n' +
    Object.entries(commands)
      .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
      .join('\n') +
    '\n\nRun `cbft <command> --help` for its options.\n'
  );
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    const { createRequire } = await import('node:module');
    process.stdout.write(`${(createRequire(import.meta.url)('../../../package.json') as { version: string }).version}\n`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`cbft: unknown command ${JSON.stringify(name)}\n\n${help()}`);
    return 2;
  }
  const mod = await command.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(mod.usage + '\n');
    return 0;
  }
  try {
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof CbftError) {
      process.stderr.write(`cbft ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`cbft: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
