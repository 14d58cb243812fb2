import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CbftError, ErrorCodes } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Strict option parsing: unknown flags and missing values are usage errors with the flag named. */
export type Parsed<O extends Options> = {
  values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };
  positionals: string[];
};

export function parseCommand<O extends Options>(argv: string[], options: O, allowPositionals = false): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals }) as Parsed<O>;
  } catch (cause) {
    throw new CbftError(ErrorCodes.USAGE, (cause as Error).message, { cause });
  }
}

export function requireOption(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new CbftError(ErrorCodes.USAGE, `${flag} is required`);
  return value;
}

export function intOption(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]+$/.test(value)) throw new CbftError(ErrorCodes.USAGE, `${flag} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}
