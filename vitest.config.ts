import { configDefaults, defineConfig } from 'vitest/config';

/** Tests that start whole clusters under load: one file at a time (vitest.heavy.config.ts). */
export const HEAVY = ['test/faults/**/*.test.ts', 'test/redteam/**/*.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds and runs the image with podman: opt-in, `npm run test:container`.
    exclude: [...configDefaults.exclude, 'test/deploy/container.test.ts', ...HEAVY],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
