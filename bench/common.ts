/** What the bench drivers (run.ts: scenarios with the floor; istiod.ts: side by side with istiod) share. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadReport } from '../src/load/run-load.js';
import { type ChurnKind } from '../src/load/churn.js';
import { ConfigStore } from '../src/config/store.js';
import { parseManifests } from '../src/sources/file/parse.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

/** Poll `url` until it answers 200; the time it took (ms). A server that exits first fails it, with its log's tail. */
export async function waitReady(url: string, child: ChildProcess, timeoutMs: number, logFile?: string): Promise<number> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutMs;
  const tail = (): string => (logFile ? `:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}` : '');
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before it was ready${tail()}`);
    try { if ((await fetch(url)).status === 200) return performance.now() - t0; } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready in ${timeoutMs} ms${tail()}`);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** `meshpilot load ARGV --json OUT` in its own process (progress passed through to stderr); its report. */
export async function runHarness(argv: string[], out: string): Promise<LoadReport> {
  const child = spawn(process.execPath, [MAIN, 'load', ...argv, '--json', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (c: Buffer) => process.stderr.write(c));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`meshpilot load exited with ${code}`);
  return JSON.parse(fs.readFileSync(out, 'utf8')) as LoadReport;
}

/** One decimal. */
export const f1 = (n: number): string => (Math.round(n * 10) / 10).toString();

/** A change kind's convergence as "p50 / p99 / max". */
export const lat = (r: LoadReport, k: ChurnKind): string => {
  const b = r.churn.byKind[k];
  return b ? `${f1(b.latency.p50)} / ${f1(b.latency.p99)} / ${f1(b.latency.max)}` : '–';
};

/** A change kind's proxy-updates reached (of expected). */
export const reach = (r: LoadReport, k: ChurnKind): string => {
  const b = r.churn.byKind[k];
  return b ? `${b.reached}${b.expected !== null ? `/${b.expected}` : ''}` : '–';
};

/** A ConfigStore with every manifest under a directory (a generated mesh), for in-process benchmarks. */
export function loadStore(dir: string): ConfigStore {
  const store = new ConfigStore();
  const walk = (d: string): void => {
    for (const f of fs.readdirSync(d)) {
      if (f.startsWith('.')) continue;
      const p = path.join(d, f);
      if (fs.statSync(p).isDirectory()) walk(p);
      else for (const doc of parseManifests(p, fs.readFileSync(p, 'utf8')).docs) store.upsert(doc.resource, p);
    }
  };
  walk(dir);
  return store;
}
