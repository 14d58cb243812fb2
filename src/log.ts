import { pino, type Logger } from 'pino';

/**
 * pino JSON logs on stdout, one object per line, with the node id on every line. LOG_LEVEL
 * (trace|debug|info|warn|error|silent) sets the level; default info.
 */
export function createLogger(id: string, role: string): Logger {
  return pino({
    level: process.env.LOG_LEVEL ?? 'info',
    base: { node: id, role },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

export type { Logger };
