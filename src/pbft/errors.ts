import { CbftError, ErrorCodes } from '../errors.js';

/**
 * Stable codes for errors the PBFT engine raises on purpose. Peer input never throws out of the
 * engine (it is dropped and counted); these are for misuse by the embedding shell.
 */
export const PbftErrorCodes = {
  /** Invalid engine configuration (n != 3s+1, window not a multiple of K, ...). */
  CONFIG: 'CBFT_ERR_PBFT_CONFIG',
  /** The shell called the engine out of contract (executed() out of order, bad tick input, ...). */
  USAGE: 'CBFT_ERR_PBFT_USAGE',
  /** Persisted records handed to the constructor are inconsistent with `lastExecuted`. */
  RESTORE: 'CBFT_ERR_PBFT_RESTORE',
  /** Malformed bytes (shared with the rest of cbft). */
  DECODE: ErrorCodes.DECODE,
  /** A value that cannot be encoded (shared with the rest of cbft). */
  ENCODE: ErrorCodes.ENCODE,
} as const;

export function pbftError(code: (typeof PbftErrorCodes)[keyof typeof PbftErrorCodes], message: string): CbftError {
  return new CbftError(code, message);
}
