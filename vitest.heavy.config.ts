import { defineConfig } from 'vitest/config';
import { HEAVY } from './vitest.config.js';

/**
 * The fault suite and the red team: each file starts whole clusters and holds a load while it
 * kills, pauses or attacks them, so files run one after another (two at once on a 2-core machine
 * would starve each other's timeouts). Part of `npm test`; `npm run test:faults` runs test/faults.
 */
export default defineConfig({
  test: {
    include: HEAVY,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
