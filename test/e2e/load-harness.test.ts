/**
 * `meshpilot load` against a real in-process meshpilot on loopback: ~20 simulated proxies connect, converge,
 * see churn, and the report carries the expected fields. No timing assertions: timings are bench/'s business.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { MeshpilotServer, defaultServerOptions } from '../../src/server.js';
import { generateMesh, defaultMeshSpec } from '../../src/load/mesh-gen.js';
import { defaultLoadOptions, runLoad, type LoadReport } from '../../src/load/run-load.js';
import { CHURN_KINDS, type ChurnKind } from '../../src/load/churn.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

async function withServer(isolation: boolean, fn: (addr: string, dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-load-'));
  generateMesh({ ...defaultMeshSpec(), services: 12, namespaces: 3, endpoints: 2, vsEvery: 3, sidecarIsolation: isolation }, dir);
  const server = new MeshpilotServer({
    ...defaultServerOptions(), configDirs: [dir], xdsPort: 0, monitoringPort: 0, host: '127.0.0.1', workers: 1,
    debounceAfterMs: 50, logger: pino({ level: 'silent' }),
  });
  await server.start();
  try {
    await fn(`127.0.0.1:${server.xdsPort}`, dir);
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function assertConverged(r: LoadReport, proxies: number, kinds: readonly ChurnKind[] = CHURN_KINDS): void {
  assert.equal(r.connect.ready, proxies, `all proxies configured (errors: ${r.errors.join('; ')})`);
  assert.equal(r.connect.failed, 0);
  assert.ok(r.traffic.acks >= proxies * 4, `every proxy ACKed CDS, EDS, LDS and RDS (${r.traffic.acks} ACKs)`);
  for (const t of ['CDS', 'EDS', 'LDS', 'RDS']) assert.ok((r.traffic.byType[t]?.responses ?? 0) >= proxies, `${t} reached every proxy`);
  for (const kind of kinds) {
    const k = r.churn.byKind[kind];
    assert.ok(k && k.events >= 1, `${kind} changes were made`);
    assert.ok(k.expected !== null && k.expected > 0);
    assert.equal(k.reached, k.expected, `every ${kind} change reached every proxy that can see it`);
    assert.equal(k.latency.count, k.reached);
  }
}

test('meshpilot load (CLI, SotW): 20 proxies with Sidecar isolation converge, churn reaches exactly the namespace, JSON report', async () => {
  await withServer(true, async (addr, dir) => {
    const out = path.join(dir, '..', `load-${process.pid}.json`);
    const child = spawn(process.execPath, [MAIN, 'load', '--target', addr, '--proxies', '20', '--mesh', dir,
      '--churn', 'endpoints=2,vs=2,service=2', '--duration', '1s', '--streams-per-conn', '5', '--quiet', '--json', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c) => { stderr += c; });
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0, stderr);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as LoadReport;
    fs.rmSync(out);
    assert.equal(r.mode, 'sotw');
    assert.equal(r.connections, 4);
    assertConverged(r, 20);
    // Isolation: an endpoint change is seen only by the proxies of the service's namespace (20 proxies / 3 namespaces).
    for (const e of r.churn.events) assert.ok(e.expected! <= 7 && e.reached === e.expected, JSON.stringify(e));
    assert.ok(r.harness.cpuMs.connect > 0);
    assert.match(stderr, /connect storm: 20\/20/);
  });
});

test('meshpilot load (in process, delta xDS): proxies converge over DeltaAggregatedResources and see churn', async () => {
  await withServer(false, async (addr, dir) => {
    const r = await runLoad({ ...defaultLoadOptions(), target: addr, proxies: 20, mode: 'delta', meshDir: dir,
      churn: [{ kind: 'endpoints', perSecond: 2 }, { kind: 'vs', perSecond: 2 }, { kind: 'service', perSecond: 2 }], durationMs: 1000, streamsPerConn: 20,
      serverPid: process.pid, progress: false });
    assert.equal(r.mode, 'delta');
    assertConverged(r, 20);
    // No isolation: every change reaches every proxy.
    for (const e of r.churn.events) assert.equal(e.expected, 20);
    assert.ok(r.server && r.server.rssMB.afterConnect > 0);
  });
});

test('meshpilot load (in process, proxyless gRPC): LDS by target → RDS → CDS → EDS, churn reaches the clients resolving the service', async () => {
  await withServer(true, async (addr, dir) => {
    const r = await runLoad({ ...defaultLoadOptions(), target: addr, proxies: 12, mode: 'sotw', proxyless: true, meshDir: dir,
      churn: [{ kind: 'endpoints', perSecond: 2 }, { kind: 'vs', perSecond: 2 }], durationMs: 1000, streamsPerConn: 12, progress: false });
    assert.equal(r.proxyless, true);
    assertConverged(r, 12, ['endpoints', 'vs']);
  });
});
