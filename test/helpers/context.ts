/** A PushContext straight from YAML documents, for unit tests of generators and push decisions. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigStore } from '../../src/config/store.js';
import { parseManifests } from '../../src/sources/file/parse.js';
import { buildPushContextData } from '../../src/model/build-push-context.js';
import { PushContext, type MeshSettings } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';

export const TEST_MESH: MeshSettings = { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local' };

/** Documents by file name; every one must parse cleanly. */
export function ctxOf(docs: Record<string, string>, mesh: MeshSettings = TEST_MESH): PushContext {
  const store = new ConfigStore();
  for (const [file, text] of Object.entries(docs)) {
    const parsed = parseManifests(file, text);
    assert.deepEqual(parsed.errors ?? [], [], `${file} parses`);
    for (const d of parsed.docs) store.upsert(d.resource, file);
  }
  return new PushContext(buildPushContextData(store, mesh, 'v1', 'Kubernetes'));
}

/** Every golden scenario (one mesh per file) and the bundled examples (bookinfo with its traffic rules, one mesh). */
export function goldenAndExampleMeshes(): Array<Record<string, string>> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const golden = path.resolve(here, '../../../test/golden');
  const examples = path.resolve(here, '../../../examples');
  return [
    ...fs.readdirSync(golden).filter((f) => f.endsWith('.yaml')).map((f) => ({ [f]: fs.readFileSync(path.join(golden, f), 'utf8') })),
    Object.fromEntries(['bookinfo', 'bookinfo-traffic'].flatMap((d) => fs.readdirSync(path.join(examples, d))
      .filter((f) => f.endsWith('.yaml')).map((f) => [`${d}/${f}`, fs.readFileSync(path.join(examples, d, f), 'utf8')]))),
  ];
}

/** The addresses of a cluster's load assignment for a proxy, in its order; undefined when the proxy has no such cluster. */
export function clusterEndpointAddresses(ctx: PushContext, scope: ProxyScope, cluster: string): string[] | undefined {
  if (!planResources(ctx, scope, CLUSTER_TYPE).some((p) => p.name === cluster)) return undefined;
  const cla = buildResource(ctx, scope, ENDPOINT_TYPE, cluster) as any;
  return cla.endpoints.flatMap((l: any) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.address as string));
}
