/**
 * Every error cbft raises on purpose carries a stable code (like fastify's FST_ERR_*), so callers
 * and tests match on the code, never on the wording.
 */
export class CbftError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CbftError';
    this.code = code;
  }
}

export const ErrorCodes = {
  DECODE: 'CBFT_ERR_DECODE',
  ENCODE: 'CBFT_ERR_ENCODE',
  THRESHOLD: 'CBFT_ERR_THRESHOLD',
  KEY: 'CBFT_ERR_KEY',
  CLUSTER: 'CBFT_ERR_CLUSTER',
  MERKLE: 'CBFT_ERR_MERKLE',
  USAGE: 'CBFT_ERR_USAGE',
} as const;
