/**
 * The --mesh-config file watch: an editor's write-to-temp-then-rename and a mounted ConfigMap's update (kubelet
 * writes a new timestamped directory and atomically swaps the `..data` symlink the file points through) both reach
 * onChange once with the new text; a deleted file reaches it as undefined; unchanged content is no event.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MeshConfigFile } from '../../src/sources/file/mesh-config-file.js';
import { eventually } from '../helpers/grpc-backend.js';

function tmpDir(): string { return fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-meshfile-')); }

test('editor rename, same content, deletion', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'mesh.yaml');
  fs.writeFileSync(file, 'connectTimeout: 1s\n');
  const seen: Array<string | undefined> = [];
  const w = new MeshConfigFile(file, (t) => seen.push(t));
  try {
    assert.equal(w.readNow(), 'connectTimeout: 1s\n');
    w.watch();
    fs.writeFileSync(path.join(dir, '.mesh.yaml.swp'), 'connectTimeout: 2s\n');
    fs.renameSync(path.join(dir, '.mesh.yaml.swp'), file);
    await eventually(async () => seen.length === 1, 3000, 10);
    assert.deepEqual(seen, ['connectTimeout: 2s\n']);
    fs.writeFileSync(file, 'connectTimeout: 2s\n');
    fs.writeFileSync(path.join(dir, 'unrelated.txt'), 'x');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(seen.length, 1, 'rewriting the same content, or another file, is no event');
    fs.rmSync(file);
    await eventually(async () => seen.length === 2, 3000, 10);
    assert.equal(seen[1], undefined);
  } finally { w.stop(); fs.rmSync(dir, { recursive: true, force: true }); }
});

test('a mounted ConfigMap update (kubelet ..data symlink swap) is seen', async () => {
  const mount = tmpDir();
  const writeVersion = (name: string, text: string): void => {
    fs.mkdirSync(path.join(mount, name));
    fs.writeFileSync(path.join(mount, name, 'mesh'), text);
  };
  writeVersion('..2026_11_25_01', 'outboundTrafficPolicy: {mode: ALLOW_ANY}\n');
  fs.symlinkSync('..2026_11_25_01', path.join(mount, '..data'));
  fs.symlinkSync('..data/mesh', path.join(mount, 'mesh'));
  const seen: Array<string | undefined> = [];
  const w = new MeshConfigFile(path.join(mount, 'mesh'), (t) => seen.push(t));
  try {
    assert.match(w.readNow(), /ALLOW_ANY/);
    w.watch();
    // kubelet's AtomicWriter: new timestamped dir, new ..data_tmp symlink, rename over ..data, remove the old dir.
    writeVersion('..2026_11_25_02', 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
    fs.symlinkSync('..2026_11_25_02', path.join(mount, '..data_tmp'));
    fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
    fs.rmSync(path.join(mount, '..2026_11_25_01'), { recursive: true });
    await eventually(async () => seen.length === 1, 3000, 10);
    assert.deepEqual(seen, ['outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n']);
  } finally { w.stop(); fs.rmSync(mount, { recursive: true, force: true }); }
});
