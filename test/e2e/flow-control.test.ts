/**
 * Flow control over real gRPC: a proxy that stops reading does not make the server buffer every push; its pushes
 * are coalesced and, once it reads again, it receives the latest config. Meanwhile other proxies are served.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { CLUSTER_TYPE } from '../../src/proto/type-urls.js';

let mesh: TestMesh;
const clients: AdsTestClient[] = [];
const SERVICES = 300;

function bigMesh(): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < SERVICES; i++) files[`svc-${i}.yaml`] = serviceYaml({ name: `svc-${i}`, port: 8080, endpoints: [{ ip: `10.3.${i >> 8}.${i & 255}`, port: 8080 }] });
  return files;
}

const dr = (i: number): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: churn, namespace: default}
spec:
  host: svc-0
  trafficPolicy: {connectionPool: {tcp: {maxConnections: ${i + 1}}}}
`;

before(async () => { mesh = await startMeshpilot(bigMesh(), { pushAckTimeoutMs: 200, debounceAfterMs: 10 }); });
after(async () => { for (const c of clients) c.close(); await mesh.stop(); });

test('a proxy that stops reading gets coalesced pushes, then the latest config', async () => {
  const slow = new AdsTestClient(mesh.xdsAddress, 'sidecar~10.9.0.1~slow.default~default.svc.cluster.local', { NAMESPACE: 'default' });
  const fast = new AdsTestClient(mesh.xdsAddress, 'sidecar~10.9.0.2~fast.default~default.svc.cluster.local', { NAMESPACE: 'default' });
  clients.push(slow, fast);
  for (const c of [slow, fast]) { c.send({ type_url: CLUSTER_TYPE }); c.ack(await c.next(CLUSTER_TYPE)); }
  const first = slow.received.at(-1)!;
  assert.ok(first.resources.length >= SERVICES);

  slow.pause();
  const CHANGES = 45;
  const maxConnections = (r: { resources: any[] }): number | undefined =>
    r.resources.find((x: any) => x.name === 'outbound|8080||svc-0.default.svc.cluster.local')?.circuit_breakers?.thresholds?.[0]?.max_connections?.value;
  for (let i = 0; i < CHANGES; i++) {
    const n = fast.received.length;
    mesh.write('dr.yaml', dr(i));
    // The fast proxy is served every change (and ACKs it).
    for (;;) {
      const r = await fast.next(CLUSTER_TYPE, 5000, n);
      fast.ack(r);
      if (maxConnections(r) === i + 1) break;
    }
  }
  const fastResponses = fast.received.filter((r) => r.type_url === CLUSTER_TYPE).length;
  assert.ok(fastResponses >= CHANGES, `fast proxy got ${fastResponses} CDS responses for ${CHANGES} changes`);
  const con = [...mesh.server.ads.connections].find((c) => c.proxy.id.includes('~slow.'))!;
  assert.ok(con.stats.coalesced > 0, `pushes to the blocked proxy were held back (${JSON.stringify(con.stats)})`);
  assert.ok(con.stats.responses < CHANGES, `the server wrote ${con.stats.responses} responses, not one per change`);

  slow.resume();
  const latest = await (async () => {
    const t0 = Date.now();
    for (;;) {
      const last = slow.received.filter((r) => r.type_url === CLUSTER_TYPE).at(-1)!;
      if (maxConnections(last) === CHANGES) return last;
      if (Date.now() - t0 > 5000) throw new Error(`slow proxy never got the latest config (${slow.received.length} responses)`);
      slow.ack(last);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  assert.ok(latest);
  const slowResponses = slow.received.filter((r) => r.type_url === CLUSTER_TYPE).length;
  assert.ok(slowResponses < fastResponses, `slow proxy received ${slowResponses} responses vs ${fastResponses}: coalesced`);
});
