/** `meshpilot serve` as a user runs it: the bundled mesh, /ready, flag errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

test('serve on the bundled example mesh: ready on the monitoring port, clean shutdown on SIGTERM', async () => {
  const child = spawn(process.execPath, [MAIN, 'serve', '--config-dir', path.join(ROOT, 'examples/bookinfo'), '--xds-port', '0', '--secure-xds-port', '0', '--monitoring-port', '0', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const ready = await new Promise<any>((resolve, reject) => {
      const rl = readline.createInterface({ input: child.stdout! });
      rl.on('line', (l) => { try { const j = JSON.parse(l); if (j.msg === 'meshpilot ready') resolve(j); } catch { /* not JSON */ } });
      child.once('exit', (c) => reject(new Error(`exited ${c}`)));
      setTimeout(() => reject(new Error('no ready line in 10 s')), 10_000);
    });
    assert.equal(ready.services, 5);
    assert.equal(ready.rejected, 0);
    assert.equal(ready.workers, 1);
    const r = await fetch(`http://127.0.0.1:${ready.monitoringPort}/ready`);
    assert.equal(r.status, 200);
  } finally {
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
  }
});

test('unknown flags and bad values are errors at start', () => {
  const r1 = spawnSync(process.execPath, [MAIN, 'serve', '--config-dir', 'x', '--xds-prot', '1'], { encoding: 'utf8' });
  assert.notEqual(r1.status, 0);
  assert.match(r1.stderr, /unknown option '--xds-prot'/);
  const r2 = spawnSync(process.execPath, [MAIN, 'serve', '--config-dir', 'x', '--debounce-after', '10 parsecs'], { encoding: 'utf8' });
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /debounce-after/);
  const r3 = spawnSync(process.execPath, [MAIN, 'serve', '--config-dir', '/nonexistent/dir', '--xds-port', '0', '--monitoring-port', '0'], { encoding: 'utf8' });
  assert.notEqual(r3.status, 0);
  assert.match(r3.stderr, /nonexistent.*not a directory/);
  const help = spawnSync(process.execPath, [MAIN, 'serve', '--help'], { encoding: 'utf8' });
  for (const f of ['--config-dir', '--xds-port', '--monitoring-port', '--workers', '--debounce-after', '--debounce-max', '--log-level']) assert.ok(help.stdout.includes(f), f);
});
