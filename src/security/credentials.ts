/**
 * Gateway credentials in file mode: Kubernetes `Secret` objects (type kubernetes.io/tls, or generic with
 * tls.crt/tls.key, and ca.crt for `NAME-cacert`) read from `--secret-dir`, kept apart from `--config-dir` so that
 * private keys never pass through the config store, its logs or debug dumps. istiod's credentials controller
 * (pilot/pkg/credentials/kube) resolves `kubernetes://NAME` the same way: only in the gateway's own namespace.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { MeshpilotError } from '../config/errors.js';
import type { SecretSource, ResolvedSecret } from './sds.js';

export class CredentialError extends MeshpilotError {
  override readonly code = 'ERR_CREDENTIAL';
}

const PREFIX = 'kubernetes://';
const CA_SUFFIX = '-cacert';

interface SecretObject { namespace: string; name: string; data: Record<string, string> }

function decode(obj: any): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(String(v), 'base64').toString('utf8');
  for (const [k, v] of Object.entries((obj.stringData ?? {}) as Record<string, string>)) out[k] = String(v);
  return out;
}

export class FileSecretSource implements SecretSource {
  private secrets = new Map<string, SecretObject>();
  private stamp = '';
  /** Problems found in the last scan (file and document), for logs; never secret contents. */
  errors: string[] = [];

  constructor(private readonly dirs: string[]) { this.scan(); }

  private files(): string[] {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.name.startsWith('.')) continue;
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ya?ml|json)$/.test(e.name)) out.push(p);
      }
    };
    for (const d of this.dirs) walk(d);
    return out.sort();
  }

  /** Re-read when any file changed; returns true when the set of secrets may have changed. */
  scan(): boolean {
    const files = this.files();
    const stamp = files.map((f) => { const st = fs.statSync(f); return `${f}:${st.mtimeMs}:${st.size}`; }).join('|');
    if (stamp === this.stamp) return false;
    const secrets = new Map<string, SecretObject>();
    const errors: string[] = [];
    for (const f of files) {
      parseAllDocuments(fs.readFileSync(f, 'utf8')).forEach((doc, i) => {
        if (doc.errors.length > 0) { errors.push(`${f}: document ${i}: ${doc.errors[0]!.message}`); return; }
        const obj = doc.toJS() as any;
        if (obj?.kind !== 'Secret') return;
        const name = obj.metadata?.name;
        if (typeof name !== 'string' || !name) { errors.push(`${f}: document ${i} (Secret): metadata.name: required`); return; }
        const namespace = typeof obj.metadata?.namespace === 'string' ? obj.metadata.namespace : 'default';
        try {
          secrets.set(`${namespace}/${name}`, { namespace, name, data: decode(obj) });
        } catch (e) {
          errors.push(`${f}: document ${i} (Secret ${name}): data: ${(e as Error).message}`);
        }
      });
    }
    this.secrets = secrets;
    this.errors = errors;
    this.stamp = stamp;
    return true;
  }

  resolve(resourceName: string, namespace: string): ResolvedSecret | undefined {
    let name = resourceName.startsWith(PREFIX) ? resourceName.slice(PREFIX.length) : resourceName;
    const wantCa = name.endsWith(CA_SUFFIX);
    if (wantCa) name = name.slice(0, -CA_SUFFIX.length);
    let ns = namespace;
    if (name.includes('/')) {
      [ns, name] = name.split('/', 2) as [string, string];
      if (ns !== namespace) throw new CredentialError(`secret ${resourceName}: a proxy in namespace ${namespace} may only read secrets of its own namespace`);
    }
    const s = this.secrets.get(`${ns}/${name}`);
    if (!s) {
      const elsewhere = [...this.secrets.values()].find((x) => x.name === name);
      if (elsewhere) throw new CredentialError(`secret ${resourceName}: exists in namespace ${elsewhere.namespace}, not in the proxy's namespace ${namespace}`);
      return undefined;
    }
    if (wantCa) {
      const ca = s.data['ca.crt'] ?? s.data.cacert;
      if (!ca) throw new CredentialError(`secret ${ns}/${name}: no ca.crt for ${resourceName}`);
      return { kind: 'ca', caPem: ca };
    }
    const cert = s.data['tls.crt'] ?? s.data.cert;
    const key = s.data['tls.key'] ?? s.data.key;
    if (!cert || !key) throw new CredentialError(`secret ${ns}/${name}: tls.crt and tls.key are required`);
    return { kind: 'tls', certChainPem: cert, privateKeyPem: key };
  }
}
