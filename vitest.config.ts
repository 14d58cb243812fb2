import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds and runs the image with podman: opt-in, `npm run test:container`.
    exclude: [...configDefaults.exclude, 'test/deploy/container.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
