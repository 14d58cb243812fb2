# cbft: one image for every role, chosen by its command:
#   docker run IMAGE sidecar  --cluster /etc/cbft --id replica-0 --upstream http://127.0.0.1:3000 ...
#   docker run IMAGE firewall --cluster /etc/cbft --id fw-0-0 ...
#   docker run IMAGE keygen | up | verify | --help
# The image holds no keys: mount the cluster directory (cluster.json and keys/<id>.json, mode 0600,
# owned by uid 10001) at run time. Kubernetes manifests: examples/kubernetes/.
#
# Build:  docker build -t cbft:0.1.0 .          (podman: add --format docker to keep HEALTHCHECK)
# Base:   --build-arg BASE_IMAGE=...            any Node.js >= 20.19 image with /bin/sh and npm

ARG BASE_IMAGE=node:22-bookworm-slim

# ---- build: all dependencies, TypeScript compiled to dist/ -------------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (the build) needs the sources, copied below;
# no dependency needs an install script to compile.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# Only src/: the other folders tsconfig.build.json lists (benchmarks, simulator) are not shipped,
# and tsc compiles what is there.
COPY src ./src
RUN npm run build

# ---- production dependencies only ---------------------------------------------------------------
FROM ${BASE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="cbft" \
      org.opencontainers.image.description="Privacy firewall for existing HTTP services" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# Memory settings of every cbft process, measured in bench/PROFILE.md (src/up/local-cluster.ts
# sets the same for `cbft up`): V8's young generation and old generation capped, and glibc malloc
# returning freed blocks of 64 KiB and more to the system. A service container started from this
# image with its own NODE_OPTIONS replaces the first line.
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=128" \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=65536 \
    MALLOC_TRIM_THRESHOLD_=131072
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist/src ./dist/src
# The Node.js determinism preload and the example service (the Kubernetes example runs it).
COPY adapters ./adapters
COPY examples/bank ./examples/bank
# `cbft` on PATH: dist/src/cli/main.js is executable and starts with #!/usr/bin/env node.
RUN ["ln", "-s", "/app/dist/src/cli/main.js", "/usr/local/bin/cbft"]

# Numeric, so Kubernetes' runAsNonRoot can check it; the manifests run as the same uid.
USER 10001:10001

# GET <admin url>/healthz. The admin URL is $CBFT_ADMIN_URL if set, else 127.0.0.1 with the port of
# this node's adminUrl, read from the --cluster and --id arguments of the container's command.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["node", "-e", "\
const fs = require('fs'), path = require('path'); \
let url = process.env.CBFT_ADMIN_URL; \
try { \
  if (!url) { \
    const argv = fs.readFileSync('/proc/1/cmdline', 'utf8').split('\\0'); \
    const arg = (flag) => { const i = argv.indexOf(flag); if (i >= 0) return argv[i + 1]; \
      const a = argv.find((x) => x.startsWith(flag + '=')); return a && a.slice(flag.length + 1); }; \
    const dir = path.resolve('/proc/1/cwd', arg('--cluster')); \
    const cluster = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')); \
    const node = [...cluster.replicas, ...cluster.chains.flat()].find((n) => n.id === arg('--id')); \
    url = 'http://127.0.0.1:' + new URL(node.adminUrl).port; \
  } \
} catch (err) { console.error('healthcheck: set CBFT_ADMIN_URL (' + err.message + ')'); process.exit(1); } \
fetch(url + '/healthz', { signal: AbortSignal.timeout(4000) }).then( \
  (res) => { console.log(url + '/healthz: ' + res.status); process.exit(res.ok ? 0 : 1); }, \
  (err) => { console.error(url + '/healthz: ' + err.message); process.exit(1); });"]

ENTRYPOINT ["cbft"]
CMD ["--help"]
