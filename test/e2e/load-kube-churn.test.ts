/**
 * `meshpilot load --churn-kubeconfig`: churn through a REAL Kubernetes API server (scripts/install-kube-apiserver.sh)
 * instead of files — each EndpointSlice jitter and VirtualService edit is a server-side apply, and a meshpilot
 * watching that API server must carry every change to exactly the proxies that can see it. The same path
 * bench/istiod.ts uses against istiod. Skips, saying why, where the API server cannot run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startMeshpilot } from '../helpers/meshpilot.js';
import { startRealApiServer, realApiServerMissing } from '../helpers/kube-apiserver.js';
import { generateMesh, defaultMeshSpec } from '../../src/load/mesh-gen.js';
import type { LoadReport } from '../../src/load/run-load.js';
import { KubeChurnApplier } from '../../src/load/churn.js';

const missing = realApiServerMissing();
const MAIN = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../src/cli/main.js');

function crd(kind: string, plural: string): Record<string, any> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${plural}.networking.istio.io` },
    spec: {
      group: 'networking.istio.io', scope: 'Namespaced', names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

/** Every object gen-mesh wrote; Services without their generated clusterIP (the API server allocates one). */
function meshObjects(dir: string): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) { walk(path.join(d, e.name)); continue; }
      for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(d, e.name), 'utf8'))) {
        const o = doc.toJSON() as Record<string, any>;
        if (o.kind === 'Service') delete o.spec.clusterIP;
        out.push(o);
      }
    }
  };
  walk(dir);
  return out.sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
}

test('meshpilot load --churn-kubeconfig: endpoint, VirtualService and Service churn applied to a real API server reaches exactly the proxies that can see it', { skip: missing, timeout: 120_000 }, async () => {
  const kube = await startRealApiServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-load-kube-'));
  let mesh: Awaited<ReturnType<typeof startMeshpilot>> | undefined;
  try {
    for (const [k, p] of [['VirtualService', 'virtualservices'], ['Sidecar', 'sidecars']] as const) await kube.apply(crd(k, p));
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all']);
    generateMesh({ ...defaultMeshSpec(), services: 9, namespaces: 3, endpoints: 2, vsEvery: 3, sidecarIsolation: true, format: 'kube' }, dir);
    const objs = meshObjects(dir);
    await kube.kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs.filter((o) => o.kind === 'Namespace') }));
    await kube.kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs.filter((o) => o.kind !== 'Namespace') }));

    mesh = await startMeshpilot({}, { kube: { kubeconfigs: [{ path: kube.kubeconfigPath }], reflector: { backoffInitialMs: 50, backoffMaxMs: 1000 } } });
    const deadline = Date.now() + 30_000;
    while (!mesh.server.isReady() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(mesh.server.isReady(), 'meshpilot synced the API server');

    // The CLI, as bench/istiod.ts runs it.
    const out = path.join(dir, 'report.json');
    const child = spawn(process.execPath, [MAIN, 'load', '--target', mesh.xdsAddress, '--proxies', '12', '--mesh', dir, '--churn-kubeconfig', kube.kubeconfigPath,
      '--churn', 'endpoints=3,vs=2,service=2', '--duration', '1500ms', '--streams-per-conn', '12', '--quiet', '--json', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c) => { stderr += c; });
    assert.equal(await new Promise((res) => child.once('exit', res)), 0, stderr);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as LoadReport;
    assert.equal(r.connect.ready, 12, `all proxies configured (errors: ${r.errors.join('; ')})`);
    for (const kind of ['endpoints', 'vs', 'service'] as const) {
      const k = r.churn.byKind[kind];
      assert.ok(k && k.events >= 2, `${kind} changes were made`);
      assert.equal(k.expected, k.events * 4, 'Sidecar isolation: each change is for the 4 proxies of its namespace');
      assert.equal(k.reached, k.expected, `every ${kind} change reached every proxy that can see it`);
    }
    // The last endpoint change is what the API server holds now.
    const last = r.churn.events.filter((e) => e.kind === 'endpoints').at(-1)!;
    const slice = JSON.parse(await kube.kubectl(['get', 'endpointslice', `${last.service}-slice`, '-n', last.namespace, '-o', 'json']));
    assert.ok(slice.endpoints.some((e: { addresses: string[] }) => e.addresses.includes(last.marker)), `${last.marker} is in the applied EndpointSlice`);

    // A change the API server refuses is an error naming the object, not a silent miss.
    const bad = await KubeChurnApplier.open(kube.kubeconfigPath);
    await assert.rejects(bad.apply('apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: broken, namespace: ns-00}\naddressType: IPv4\nendpoints:\n- addresses: ["not-an-ip"]\n'),
      /EndpointSlice ns-00\/broken/);
  } finally {
    await mesh?.stop();
    await kube.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
