/** A PushContext straight from YAML documents, for unit tests of generators and push decisions. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigStore } from '../../src/config/store.js';
import { parseManifests } from '../../src/sources/file/parse.js';
import { buildPushContextData } from '../../src/model/build-push-context.js';
import { PushContext, type MeshSettings } from '../../src/model/push-context.js';

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
