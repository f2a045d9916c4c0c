/**
 * Golden files: each scenario YAML in this folder (its header names the Istio source the expectation follows) is
 * generated for one proxy, every resource is encoded to protobuf and decoded back (so the golden shows what goes on
 * the wire), and compared with SCENARIO.json. The JSON files were reviewed by hand against Istio's behaviour; after
 * an intended change, regenerate with MESHPILOT_UPDATE_GOLDEN=1 and review the diff — never accept it blindly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigStore } from '../../src/config/store.js';
import { parseManifests } from '../../src/sources/file/parse.js';
import { buildPushContextData } from '../../src/model/build-push-context.js';
import { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, shortType } from '../../src/proto/type-urls.js';
import { decodeAny } from '../../src/proto/encode.js';
import { planResources } from '../../workers/networking/generator.js';
import { generateResources } from '../../workers/networking/generate-resources.js';
import { TEST_MESH as MESH } from '../helpers/context.js';

// Compiled to dist/test/golden; the scenarios stay in test/golden.
const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/golden');

interface Scenario {
  nodeId: string;
  metadata: Record<string, unknown>;
  /** Per type: the resource names to emit (undefined: everything a wildcard request gets; filter: a name predicate). */
  outputs: Array<{ type: string; names?: string[]; filter?: (name: string) => boolean }>;
}

const NONE = { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default' };
const SCENARIOS: Record<string, Scenario> = {
  'vs-http': {
    nodeId: 'sidecar~10.1.0.1~client-0.default~default.svc.cluster.local', metadata: NONE,
    outputs: [{ type: ROUTE_TYPE, names: ['9080'] }],
  },
  'dr-policy': {
    nodeId: 'sidecar~10.1.0.1~client-0.default~default.svc.cluster.local', metadata: NONE,
    outputs: [{ type: CLUSTER_TYPE, filter: (n) => n.startsWith('outbound|') }],
  },
  'sidecar-scope': {
    nodeId: 'sidecar~10.1.0.1~frontend-0.shop~shop.svc.cluster.local', metadata: { NAMESPACE: 'shop' },
    outputs: [
      { type: CLUSTER_TYPE, filter: (n) => !n.startsWith('outbound|') || n.includes('|80|') || n.includes('|5432|') },
      { type: LISTENER_TYPE, names: ['virtualOutbound'] },
      { type: ROUTE_TYPE },
    ],
  },
  gateway: {
    nodeId: 'router~10.1.0.100~ingress-0.istio-system~istio-system.svc.cluster.local',
    metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' } },
    outputs: [{ type: LISTENER_TYPE }, { type: ROUTE_TYPE }],
  },
  'gateway-modes': {
    nodeId: 'router~10.1.0.101~eastwest-0.istio-system~istio-system.svc.cluster.local',
    metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'eastwestgateway' } },
    outputs: [
      { type: LISTENER_TYPE },
      { type: CLUSTER_TYPE, filter: (n) => n.startsWith('outbound_.') },
      { type: ENDPOINT_TYPE, filter: (n) => n.startsWith('outbound_.') },
    ],
  },
  'sidecar-listeners': {
    nodeId: 'sidecar~10.1.0.9~api-0.shop~shop.svc.cluster.local', metadata: { NAMESPACE: 'shop', LABELS: { app: 'api' } },
    outputs: [
      { type: LISTENER_TYPE, filter: (n) => n !== 'virtualOutbound' },
      { type: CLUSTER_TYPE, filter: (n) => n.startsWith('inbound|') },
      { type: ROUTE_TYPE },
    ],
  },
  'service-entry': {
    nodeId: 'sidecar~10.1.0.1~client-0.default~default.svc.cluster.local', metadata: NONE,
    outputs: [{ type: CLUSTER_TYPE, filter: (n) => n.startsWith('outbound|') }, { type: ENDPOINT_TYPE }],
  },
};

function generate(name: string, sc: Scenario): unknown {
  const store = new ConfigStore();
  const parsed = parseManifests(`${name}.yaml`, fs.readFileSync(path.join(DIR, `${name}.yaml`), 'utf8'));
  assert.deepEqual(parsed.errors.map((e) => e.message), [], `${name}.yaml is valid`);
  for (const d of parsed.docs) store.upsert(d.resource, name);
  const ctx = new PushContext(buildPushContextData(store, MESH, 'golden', 'Kubernetes'));
  const scope = scopeFor(parseProxy(sc.nodeId, sc.metadata), ctx);
  const out: Record<string, unknown[]> = {};
  for (const o of sc.outputs) {
    let names = o.names ?? planResources(ctx, scope, o.type).map((p) => p.name);
    if (o.filter) names = names.filter(o.filter);
    const gen = generateResources(ctx, scope, o.type, names);
    for (const g of gen) assert.equal(g.error, undefined, `${g.name}: ${g.error}`);
    out[shortType(o.type)] = gen.filter((g) => g.any).map((g) => decodeAny(g.any!));
  }
  return JSON.parse(JSON.stringify(out));
}

for (const [name, sc] of Object.entries(SCENARIOS)) {
  test(`golden: ${name}`, () => {
    const actual = generate(name, sc);
    const file = path.join(DIR, `${name}.json`);
    if (process.env.MESHPILOT_UPDATE_GOLDEN === '1') fs.writeFileSync(file, JSON.stringify(actual, null, 2) + '\n');
    assert.deepEqual(actual, JSON.parse(fs.readFileSync(file, 'utf8')));
  });
}
