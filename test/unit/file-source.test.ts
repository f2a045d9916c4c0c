/** File source: multi-document YAML, watched; bad documents named precisely and never discard good state. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigStore } from '../../src/config/store.js';
import { FileSource } from '../../src/sources/file/file-source.js';
import { ConfigValidationError } from '../../src/config/errors.js';
import { parseManifests } from '../../src/sources/file/parse.js';

const VS = (name: string, host: string, weightA = 100, weightB = 0): string => `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  http:
  - route:
    - destination: {host: ${host}, subset: a}
      weight: ${weightA}
    - destination: {host: ${host}, subset: b}
      weight: ${weightB}
`;

function tmpdir(): string { return fs.mkdtempSync(path.join(os.tmpdir(), 'mp-fs-')); }

test('an invalid document is reported with file, index, object and field; the rest of the file loads', () => {
  const r = parseManifests('/cfg/mesh.yaml', `${VS('good', 'reviews')}---\n${VS('bad', 'ratings', 50, 40)}---\n# empty\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}\n`);
  assert.deepEqual(r.docs.map((d) => d.resource.metadata.name), ['good']);
  assert.equal(r.errors.length, 2);
  const [e1, e2] = r.errors;
  assert.ok(e1 instanceof ConfigValidationError);
  assert.equal(e1.code, 'ERR_CONFIG_INVALID');
  assert.equal(e1.file, '/cfg/mesh.yaml');
  assert.equal(e1.docIndex, 1);
  assert.equal(e1.kind, 'VirtualService');
  assert.equal(e1.objectName, 'bad');
  assert.match(e1.field, /^spec\.http\[0\]\.route/);
  assert.match(e1.message, /mesh\.yaml: document 1 \(VirtualService bad\)/);
  assert.equal(e2!.docIndex, 3);
  assert.equal(e2!.field, 'spec.ports[0].port');
});

test('YAML syntax errors are reported per document', () => {
  const r = parseManifests('x.yaml', `apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\nkind: [unclosed\n`);
  assert.equal(r.docs.length, 1);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.docIndex, 1);
  assert.match(r.errors[0]!.reason, /^YAML:/);
});

test('watching: add, edit, invalid edit keeps last good, rename, delete', async () => {
  const dir = tmpdir();
  const store = new ConfigStore();
  const errors: ConfigValidationError[] = [];
  const src = new FileSource({ dirs: [dir], store, onError: (e) => errors.push(e) });
  fs.writeFileSync(path.join(dir, 'a.yaml'), VS('reviews', 'reviews'));
  await src.start();
  const key = { kind: 'VirtualService', namespace: 'default', name: 'reviews' };
  assert.equal(store.get(key)?.resource.spec.http[0].route[0].weight, 100);

  const events: string[] = [];
  store.on('change', (e) => events.push(`${e.op} ${e.key.name}`));
  const waitFor = async (pred: () => boolean): Promise<void> => {
    const t0 = Date.now();
    while (!pred()) {
      if (Date.now() - t0 > 3000) throw new Error(`timeout; events: ${events.join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  // Edit through a temp file + rename, as editors do.
  fs.writeFileSync(path.join(dir, '.a.yaml.swp'), VS('reviews', 'reviews', 60, 40));
  fs.renameSync(path.join(dir, '.a.yaml.swp'), path.join(dir, 'a.yaml'));
  await waitFor(() => store.get(key)?.resource.spec.http[0].route[0].weight === 60);

  // An invalid edit is rejected and the last good state stays in force.
  fs.writeFileSync(path.join(dir, 'a.yaml'), VS('reviews', 'reviews', 10, 10));
  await waitFor(() => errors.length === 1);
  assert.equal(store.get(key)?.resource.spec.http[0].route[0].weight, 60);
  assert.equal(errors[0]!.objectName, 'reviews');

  // Rename to another file: same object, still present.
  fs.writeFileSync(path.join(dir, 'a.yaml'), VS('reviews', 'reviews', 70, 30));
  await waitFor(() => store.get(key)?.resource.spec.http[0].route[0].weight === 70);
  fs.renameSync(path.join(dir, 'a.yaml'), path.join(dir, 'b.yaml'));
  await waitFor(() => store.get(key)?.source === path.join(dir, 'b.yaml'));
  assert.ok(store.get(key));

  // Files in a new subdirectory are picked up; deleting removes the object.
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'c.yml'), VS('ratings', 'ratings'));
  await waitFor(() => store.get({ ...key, name: 'ratings' }) !== undefined);
  fs.rmSync(path.join(dir, 'b.yaml'));
  await waitFor(() => store.get(key) === undefined);
  assert.ok(events.includes('delete reviews'));
  src.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('watching nested directories: a new tree is read whole, a removed one takes its objects along, a move keeps them', async () => {
  const dir = tmpdir();
  const store = new ConfigStore();
  fs.mkdirSync(path.join(dir, 'ns-a'));
  fs.writeFileSync(path.join(dir, 'ns-a', 'a.yaml'), VS('alpha', 'alpha'));
  const src = new FileSource({ dirs: [dir], store });
  await src.start();
  const key = (name: string) => ({ kind: 'VirtualService', namespace: 'default', name });
  const waitFor = async (what: string, pred: () => boolean): Promise<void> => {
    const t0 = Date.now();
    while (!pred()) {
      if (Date.now() - t0 > 3000) throw new Error(`timeout waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  // A directory tree created in one go (as `cp -r` or an unpacked ConfigMap does): every level is read.
  const deep = path.join(dir, 'ns-b', 'team', 'x');
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(dir, 'ns-b', 'b.yaml'), VS('beta', 'beta'));
  fs.writeFileSync(path.join(deep, 'c.yaml'), VS('gamma', 'gamma'));
  await waitFor('beta and gamma', () => store.get(key('beta')) !== undefined && store.get(key('gamma')) !== undefined);
  // A later file in the new deepest directory is seen (it is watched now).
  fs.writeFileSync(path.join(deep, 'd.yaml'), VS('delta', 'delta'));
  await waitFor('delta', () => store.get(key('delta')) !== undefined);
  // Editing one file in one directory leaves the others' objects alone.
  fs.writeFileSync(path.join(dir, 'ns-a', 'a.yaml'), VS('alpha', 'alpha', 50, 50));
  await waitFor('alpha edit', () => store.get(key('alpha'))?.resource.spec.http[0].route[0].weight === 50);
  assert.ok(store.get(key('gamma')) && store.get(key('delta')) && store.get(key('beta')));
  // Removing a whole subtree deletes what its files defined, and only that.
  fs.rmSync(path.join(dir, 'ns-b', 'team'), { recursive: true });
  await waitFor('gamma and delta gone', () => store.get(key('gamma')) === undefined && store.get(key('delta')) === undefined);
  assert.ok(store.get(key('beta')) && store.get(key('alpha')));
  // Moving a directory: its objects stay, now owned by the new path.
  fs.renameSync(path.join(dir, 'ns-a'), path.join(dir, 'ns-c'));
  await waitFor('alpha moved', () => store.get(key('alpha'))?.source === path.join(dir, 'ns-c', 'a.yaml'));
  src.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('store events from a watched edit carry when the watcher first saw it (before the rescan delay)', async () => {
  const dir = tmpdir();
  const file = path.join(dir, 'vs.yaml');
  fs.writeFileSync(file, VS('r', 'reviews'));
  const store = new ConfigStore();
  const src = new FileSource({ dirs: [dir], store });
  await src.start();
  try {
    const seen = new Promise<{ observedAt?: number; emittedAt: number }>((resolve) => {
      store.on('change', (ev) => resolve({ observedAt: ev.observedAt, emittedAt: performance.now() }));
    });
    const wroteAt = performance.now();
    fs.writeFileSync(file, VS('r', 'reviews', 90, 10));
    const ev = await seen;
    assert.ok(ev.observedAt !== undefined, 'a watched change says when it was observed');
    assert.ok(ev.observedAt! >= wroteAt - 1, 'observed after the write');
    assert.ok(ev.emittedAt - ev.observedAt! >= 10, `observed ${(ev.emittedAt - ev.observedAt!).toFixed(1)} ms before the event (the 15 ms coalescing)`);
  } finally {
    src.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
