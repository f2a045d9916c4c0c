/**
 * CA cost: CreateCertificate over TLS on the secure port (token-authenticated), against the in-process signing it
 * wraps, and SDS-style issuance (key generation + signing). Prints hdr-histogram percentiles and ratios; appends
 * to bench/RESULTS.md unless --no-record.
 *
 *   node dist/bench/security-ca.js [--n 300] [--concurrency 8]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { MeshpilotServer, defaultServerOptions } from '../src/server.js';
import { caClient, createCertificate, generateCsr } from '../src/security/workload-agent.js';
import { LatencyHistogram } from '../src/load/histogram.js';

const self = fileURLToPath(import.meta.url);
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('n', 300);
const CONC = arg('concurrency', 8);
const ID = 'spiffe://cluster.local/ns/default/sa/bench';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-bench-ca-'));
fs.mkdirSync(path.join(tmp, 'config'));
fs.writeFileSync(path.join(tmp, 'tokens'), 'tok default bench\n');
const server = new MeshpilotServer({
  ...defaultServerOptions(), configDirs: [path.join(tmp, 'config')], xdsPort: -1, secureXdsPort: 0, monitoringPort: 0,
  host: '127.0.0.1', workers: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens'), logger: pino({ level: 'silent' }),
});
await server.start();
const ca = server.secure!.ca;
const csrs = await Promise.all(Array.from({ length: Math.min(N, 50) }, () => generateCsr([ID])));

async function timed(label: string, n: number, conc: number, op: (i: number) => Promise<unknown>): Promise<{ label: string; h: LatencyHistogram; perSec: number }> {
  const h = new LatencyHistogram();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < n) {
      const i = next++;
      const s = performance.now();
      await op(i);
      h.recordMs(performance.now() - s);
    }
  }));
  return { label, h, perSec: (n / (performance.now() - t0)) * 1000 };
}

const client = caClient({ address: `127.0.0.1:${server.secureXdsPort}`, rootPem: ca.trustBundlePem() });
await createCertificate(client, { csr: csrs[0]!.csrPem, validityDuration: 0, metadata: {} }, 'tok'); // warm the TLS channel
const results = [
  await timed('sign in process (1 at a time)', N, 1, (i) => ca.signCsr(csrs[i % csrs.length]!.csrPem, { uris: [ID] }, 3600_000)),
  await timed('CreateCertificate over TLS (1 at a time)', N, 1, (i) => createCertificate(client, { csr: csrs[i % csrs.length]!.csrPem, validityDuration: 0, metadata: {} }, 'tok')),
  await timed(`CreateCertificate over TLS (${CONC} concurrent)`, N, CONC, (i) => createCertificate(client, { csr: csrs[i % csrs.length]!.csrPem, validityDuration: 0, metadata: {} }, 'tok')),
  await timed('SDS issuance: key + cert (1 at a time)', N, 1, () => ca.issueKeyPair({ uris: [ID] }, 3600_000)),
];
client.close();
await server.stop();
fs.rmSync(tmp, { recursive: true, force: true });

const base = results[0]!.h.summary().p50;
const rows = results.map((r) => {
  const s = r.h.summary();
  return `| ${r.label} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} | ${r.perSec.toFixed(0)} | ${(s.p50 / base).toFixed(2)}× |`;
});
const section = `
## CA: CreateCertificate and SDS issuance (issue #7)

\`node dist/bench/security-ca.js --n ${N} --concurrency ${CONC}\` — ${new Date().toISOString()}, ${os.availableParallelism()} cores, Node ${process.version}; ECDSA P-256 self-signed CA, ECDSA P-256 CSRs; machine shared with other work (compare ratios).

| operation | p50 ms | p90 ms | p99 ms | max ms | ops/s | p50 vs in-process sign |
|---|---|---|---|---|---|---|
${rows.join('\n')}
`;
console.log(section);
if (!process.argv.includes('--no-record')) fs.appendFileSync(path.join(path.dirname(self), '../../bench/RESULTS.md'), section);
