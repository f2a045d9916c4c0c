/**
 * MeshConfig in Kubernetes mode: the `istio` ConfigMap (key `mesh`) in the system namespace, watched through the
 * informer machinery (test/helpers/fake-apiserver.ts speaks the list/watch protocol to the real client-node), as
 * istiod's kubemesh watch: applied before the first push, edits move the mesh, a bad one keeps the last good,
 * other ConfigMaps are ignored, a deleted ConfigMap means istiod's defaults again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigStore } from '../../src/config/store.js';
import { KubeSource } from '../../src/sources/kube/multicluster.js';
import { FakeApiServer, namespace, type Obj } from '../helpers/fake-apiserver.js';
import { startMeshpilot } from '../helpers/meshpilot.js';
import { eventually } from '../helpers/grpc-backend.js';

const FAST = { backoffInitialMs: 20, backoffMaxMs: 200 };

function configMap(name: string, data: Record<string, string>, ns = 'istio-system'): Obj {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data };
}

test('KubeSource: the istio ConfigMap\'s mesh key is delivered (before ready), on change, and as undefined when gone', async () => {
  const api = await new FakeApiServer().start();
  api.apply(namespace('istio-system'));
  api.apply(configMap('istio', { mesh: 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n', meshNetworks: 'networks: {}' }));
  api.apply(configMap('other', { mesh: 'ignored: true' }));
  api.apply(configMap('istio', { mesh: 'in another namespace' }, 'default'));
  const ks = new KubeSource({
    kubeconfigs: [{ path: api.kubeconfigFile('c0') }], clusterId: 'c0', store: new ConfigStore(), systemNamespace: 'istio-system',
    log: pino({ level: 'silent' }), reflector: FAST,
  });
  const seen: Array<string | undefined> = [];
  ks.on('meshConfig', (t: string | undefined) => seen.push(t));
  try {
    ks.start();
    await eventually(async () => ks.ready(), 5000, 10);
    assert.deepEqual(seen, ['outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n'], 'delivered by the time the source is ready');
    api.apply(configMap('other', { mesh: 'still ignored' }));
    api.apply(configMap('istio', { mesh: 'connectTimeout: 1s\n' }));
    await eventually(async () => seen.length === 2, 5000, 10);
    assert.equal(seen[1], 'connectTimeout: 1s\n');
    api.apply(configMap('istio', { mesh: 'connectTimeout: 1s\n', other: 'x' }));
    api.remove('ConfigMap', 'istio-system', 'istio');
    await eventually(async () => seen.length === 3, 5000, 10);
    assert.deepEqual(seen, ['outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n', 'connectTimeout: 1s\n', undefined], 'an edit of another key is no event');
  } finally { ks.stop(); await api.stop(); }
});

test('server in Kubernetes mode: the ConfigMap mesh is in force at the first push; a bad edit keeps the last good', async () => {
  const api = await new FakeApiServer().start();
  api.apply(namespace('istio-system'));
  api.apply(configMap('istio', { mesh: 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}\nconnectTimeout: 3s\n' }));
  const mesh = await startMeshpilot({}, { kube: { kubeconfigs: [{ path: api.kubeconfigFile('c0') }], reflector: FAST, leaderElection: false } });
  try {
    const first = mesh.server.meshStatus();
    assert.equal(first.source, 'configmap istio-system/istio');
    assert.equal(first.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
    assert.equal(mesh.server.engine.pushContext.data.mesh.connectTimeoutMs, 3000, 'the first PushContext has it');
    api.apply(configMap('istio', { mesh: 'outboundTrafficPolicy: {mode: NOPE}\n' }));
    await eventually(async () => mesh.server.meshConfigRejected === 1, 5000, 10);
    assert.match(mesh.server.meshStatus().lastError ?? '', /outboundTrafficPolicy\.mode: invalid value "NOPE"/);
    assert.equal(mesh.server.meshStatus().mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
    api.remove('ConfigMap', 'istio-system', 'istio');
    await eventually(async () => mesh.server.meshStatus().mesh.outboundTrafficPolicy === undefined, 5000, 10);
    await mesh.settle();
    assert.equal(mesh.server.engine.pushContext.data.mesh.connectTimeoutMs, 10_000, 'istiod\'s defaults again');
  } finally { await mesh.stop(); await api.stop(); }
});
