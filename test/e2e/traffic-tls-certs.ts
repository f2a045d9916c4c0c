/** Test certificates for the traffic tests: a throwaway CA and a server certificate for some DNS names (openssl CLI). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCerts { dir: string; caCert: string; serverCert: string; serverKey: string; cleanup(): void }

export function makeCerts(dnsNames: string[]): TestCerts {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-certs-'));
  const p = (f: string): string => path.join(dir, f);
  const run = (args: string[]): void => { execFileSync('openssl', args, { stdio: 'pipe' }); };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=meshpilot-test-ca']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', `/CN=${dnsNames[0]}`]);
  fs.writeFileSync(p('ext.cnf'), `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(',')}\n`);
  run(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.pem'), '-days', '2', '-extfile', p('ext.cnf')]);
  return {
    dir, caCert: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
