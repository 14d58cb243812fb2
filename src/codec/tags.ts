/**
 * Domain tags: every hashed or signed structure starts with one, so bytes of one kind can never
 * be mistaken for bytes of another kind. Bump the version suffix when a layout changes.
 */
export const Tags = {
  request: 'cbft/request/v1',
  reply: 'cbft/reply/v1',
  leaf: 'cbft/leaf/v1',
  node: 'cbft/node/v1',
  pad: 'cbft/pad/v2',
  batch: 'cbft/batch/v1',
} as const;
