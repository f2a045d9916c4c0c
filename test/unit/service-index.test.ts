/**
 * The PushContext's service index (by hostname, namespace and port) derived from the previous one when a Service
 * change replaces a few elements of the services array must equal the index built from scratch: on random arrays
 * with duplicate hostnames (ServiceEntries), several ports per service (one number twice), and replacements that
 * change ports, namespaces and hostnames; the previous index stays as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { indexOf, serviceIndex, serviceIndexStats } from '../../src/model/push-context.js';
import type { Service } from '../../src/model/service.js';
import { rng } from '../helpers/rng.js';

test('a service index derived from the previous one equals a full index, over 300 random replacements', () => {
  const r = rng(1126);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  let n = 0;
  const mk = (): Service => {
    const ns = pick(['a', 'b', 'c', 'd']);
    const name = `s${n++ % 40}`;
    const ports = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ name: 'p', port: pick([80, 443, 8080, 9000]), targetPort: 80, protocol: 'HTTP' as const }));
    return {
      hostname: r() < 0.1 ? 'api.example.com' : `${name}.${ns}.svc.cluster.local`, name, namespace: ns, ports,
      exportTo: r() < 0.2 ? ['.'] : r() < 0.1 ? ['*'] : [], resolution: 'EDS', meshExternal: false, version: String(n),
    } as Service;
  };
  let services: Service[] = Array.from({ length: 60 }, mk);
  serviceIndex(services);
  const before = serviceIndexStats.derived;
  for (let step = 0; step < 300; step++) {
    const next = services.slice();
    const k = 1 + Math.floor(r() * 3);
    for (let j = 0; j < k; j++) {
      const i = Math.floor(r() * next.length);
      const old = next[i]!;
      // A modified service (same host, other ports), or another one in its place.
      next[i] = r() < 0.6 ? { ...old, ports: mk().ports, version: `${old.version}'` } : mk();
    }
    const derived = serviceIndex(next);
    assert.deepEqual(derived, indexOf(next), `step ${step}`);
    // The previous context still uses the previous index while a push compares the two: it must be untouched.
    assert.deepEqual(serviceIndex(services), indexOf(services), `step ${step}: the previous index changed`);
    services = next;
  }
  assert.equal(serviceIndexStats.derived - before, 300, 'every step took the derived path');
  // A different length is indexed from scratch.
  const longer = [...services, mk()];
  assert.deepEqual(serviceIndex(longer), indexOf(longer));
  assert.equal(serviceIndexStats.derived - before, 300);
});
