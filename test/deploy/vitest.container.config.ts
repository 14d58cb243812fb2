import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** `npm run test:container`: the podman image test only (see container.test.ts). */
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/deploy/container.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 1_200_000,
  },
});
