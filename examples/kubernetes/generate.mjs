#!/usr/bin/env node
// Writes the Kubernetes manifests of examples/kubernetes/ for a topology (default: the example,
// 4 replicas and 2 chains of 2). Needs a build first: `npm run build`.
//
//   node examples/kubernetes/generate.mjs [--replicas 4] [--chains 2] [--chain-length 2]
//        [--namespace cbft] [--image cbft:VERSION] [--service-cidr 10.96.0.0/12]
//        [--cluster-ip-base IP] [--out DIR]
//
// The keys are not part of these files: `cbft keygen --kubernetes` writes them (see README.md),
// with the same sizes, --service-cidr and --cluster-ip-base, so that cluster.json names each node
// by the fixed cluster IP its Service gets here.

import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('.', import.meta.url));
const { deploymentManifests, manifestText } = await import('../../dist/src/cluster/kubernetes.js').catch((err) => {
  console.error(`generate: cannot load dist/src/cluster/kubernetes.js (run npm run build first): ${err.message}`);
  process.exit(2);
});
const { checkSizes } = await import('../../dist/src/cluster/config.js');

const version = JSON.parse(readFileSync(join(here, '../../package.json'), 'utf8')).version;

const { values } = parseArgs({
  options: {
    replicas: { type: 'string', default: '4' },
    chains: { type: 'string', default: '2' },
    'chain-length': { type: 'string', default: '2' },
    namespace: { type: 'string', default: 'cbft' },
    image: { type: 'string', default: `cbft:${version}` },
    'service-cidr': { type: 'string' },
    'cluster-ip-base': { type: 'string' },
    out: { type: 'string', default: here },
  },
});

const sizes = { replicas: Number(values.replicas), chains: Number(values.chains), chainLength: Number(values['chain-length']) };
try {
  checkSizes(sizes.replicas, sizes.chains, sizes.chainLength);
  await mkdir(values.out, { recursive: true });
  for (const file of deploymentManifests({
    ...sizes,
    namespace: values.namespace,
    image: values.image,
    serviceCidr: values['service-cidr'],
    clusterIpBase: values['cluster-ip-base'],
  })) {
    await writeFile(join(values.out, file.name), manifestText(file));
    console.log(`wrote ${join(values.out, file.name)}`);
  }
} catch (err) {
  console.error(`generate: ${err.message}`);
  process.exit(2);
}
