/** `meshpilot serve --kubeconfig` as a user runs it: repeatable flag, KUBECONFIG, no --config-dir, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FakeApiServer, svc, slice } from '../helpers/fake-apiserver.js';
import { eventually } from '../helpers/grpc-backend.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const PORTS = ['--xds-port', '0', '--secure-xds-port', '-1', '--monitoring-port', '0', '--workers', '0'];

async function serve(args: string[], env: Record<string, string> = {}): Promise<{ monitoringPort: number; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [MAIN, 'serve', ...args, ...PORTS], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const ready = await new Promise<any>((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (l) => { try { const j = JSON.parse(l); if (j.msg === 'meshpilot ready') resolve(j); } catch { /* not JSON */ } });
    child.once('exit', (c) => reject(new Error(`exited ${c}: ${stderr}`)));
    setTimeout(() => reject(new Error('no ready line in 10 s')), 10_000);
  });
  return {
    monitoringPort: ready.monitoringPort,
    stop: async () => { child.kill('SIGTERM'); return new Promise((r) => child.once('exit', r)); },
  };
}

test('serve --kubeconfig A --kubeconfig B without --config-dir: two clusters, /ready after sync, clean shutdown', async () => {
  const a = await new FakeApiServer().start();
  const b = await new FakeApiServer().start();
  for (const api of [a, b]) {
    api.apply(svc('reviews', 'default', [{ name: 'http', port: 9080 }]));
    api.apply(slice('reviews-x', 'default', 'reviews', 'http', 9080, [{ ip: api === a ? '10.0.0.1' : '10.1.0.1' }]));
  }
  const s = await serve(['--kubeconfig', a.kubeconfigFile('ctx-a'), '--kubeconfig', b.kubeconfigFile('cluster-b'), '--cluster-id', 'cluster-a']);
  try {
    await eventually(async () => (await fetch(`http://127.0.0.1:${s.monitoringPort}/ready`)).status === 200, 10_000);
    const z = await (await fetch(`http://127.0.0.1:${s.monitoringPort}/debug/clusterz`)).json() as any;
    assert.deepEqual(z.clusters.map((c: any) => `${c.id}:${c.role}:${c.state}`).sort(), ['cluster-a:config:synced', 'cluster-b:remote:synced']);
  } finally {
    assert.equal(await s.stop(), 0);
    await a.stop(); await b.stop();
  }
});

test('KUBECONFIG alone is enough', async () => {
  const a = await new FakeApiServer().start();
  const s = await serve([], { KUBECONFIG: a.kubeconfigFile() });
  try {
    await eventually(async () => (await fetch(`http://127.0.0.1:${s.monitoringPort}/ready`)).status === 200, 10_000);
    assert.ok((a.requests.get('list api/v1/services') ?? 0) >= 1, 'the API server was listed');
  } finally {
    assert.equal(await s.stop(), 0);
    await a.stop();
  }
});

test('no source at all, or a kubeconfig that is not there, stops the start with a clear error', () => {
  const env = { ...process.env, KUBECONFIG: '' };
  const r1 = spawnSync(process.execPath, [MAIN, 'serve', ...PORTS], { encoding: 'utf8', env });
  assert.notEqual(r1.status, 0);
  assert.match(r1.stderr, /--config-dir or --kubeconfig/);
  const r2 = spawnSync(process.execPath, [MAIN, 'serve', '--kubeconfig', '/nonexistent/kubeconfig', ...PORTS], { encoding: 'utf8', env });
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr + r2.stdout, /\/nonexistent\/kubeconfig: no such file/);
});
