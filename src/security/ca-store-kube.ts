/**
 * The CA's store in Kubernetes, as istiod keeps it (security/pkg/pki/ca/ca.go NewSelfSignedIstioCAOptions,
 * selfsignedcarootcertrotator.go):
 * - a plugged-in CA is the `cacerts` Secret of the system namespace (istiod mounts it at /etc/cacerts) with Istio's
 *   four keys; one istiod generated itself (key `istio-generated`) is not a plugged-in CA;
 * - the self-signed root is the Secret `istio-ca-secret` (type `istio.io/ca-root`; keys ca-cert.pem, ca-key.pem,
 *   root-cert.pem, cert-chain.pem and key.pem — the last two empty, as istiod's BuildSecret writes them): read it if
 *   present, else create it. Only the leader creates or rotates it; the others wait for it and follow it through a
 *   watch. A create that loses a race (409 AlreadyExists: two leaders during a hand-over) re-reads the winner's
 *   Secret, so there is only ever one root across replicas. A Secret deleted under a running leader is written
 *   back from memory rather than replaced by a new root.
 * The Secret's data is never logged: log lines name the Secret, never its contents.
 */
import type { Logger } from '../log/logger.js';
import type { KubeApiError, KubeClient } from '../sources/kube/kube-client.js';
import { Reflector, type ReflectorOptions } from '../sources/kube/reflector.js';
import { SECRET_TYPE, type Raw } from '../sources/kube/resources.js';
import { CACERTS_FILES, CaError, type CaRootRecord, type CaStore, type CacertsFile, type PluggedInMaterial } from './ca.js';

export const CA_SECRET_NAME = 'istio-ca-secret';
export const CACERTS_SECRET_NAME = 'cacerts';
/** istiod's istioCASecretType. */
export const CA_SECRET_TYPE = 'istio.io/ca-root';
/** Marks a `cacerts` Secret istiod generated as its self-signed store (useCacertsSecretName), not a plugged-in CA. */
const ISTIO_GENERATED_KEY = 'istio-generated';

/** The leader elector, as far as the store needs it. */
export interface Leadership {
  isLeader(): boolean;
  on(event: 'leading', listener: () => void): unknown;
  off(event: 'leading', listener: () => void): unknown;
}

export interface KubeCaStoreOptions {
  client: KubeClient;
  /** The system namespace (POD_NAMESPACE, istio-system). */
  namespace: string;
  /** Only the leader writes; without one (leader election off) this replica is the only writer. */
  leader?: Leadership;
  log?: Logger;
  /** Longest wait between reads while no Secret exists or the server fails (default 5 s; a watch event or becoming leader wakes it at once). */
  retryMaxMs?: number;
  reflector?: Partial<ReflectorOptions>;
}

function b64(s: string): string { return Buffer.from(s, 'utf8').toString('base64'); }
function unb64(s: unknown): string { return typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : ''; }

/** Same root and bundle (what decides whether a stored record is news). */
function sameRecord(a: CaRootRecord | undefined, b: CaRootRecord): boolean {
  return !!a && a.caCertPem.trim() === b.caCertPem.trim() && a.caKeyPem.trim() === b.caKeyPem.trim() && a.rootCertPem.trim() === b.rootCertPem.trim();
}

export class KubeSecretCaStore implements CaStore {
  readonly description: string;
  private readonly secretsPath: string;
  private reflector: Reflector | undefined;
  /** The record this replica last obtained, wrote or adopted. */
  private current: CaRootRecord | undefined;
  private readonly listeners: Array<(rec: CaRootRecord) => void> = [];
  private readonly wakers = new Set<() => void>();
  private closed = false;
  private readonly onLeading = (): void => { this.wake(); if (this.current) void this.restoreIfMissing(); };
  /** Writes (create, update, restore) run one at a time. */
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: KubeCaStoreOptions) {
    this.description = `Secret ${opts.namespace}/${CA_SECRET_NAME}`;
    this.secretsPath = `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/secrets`;
    opts.leader?.on('leading', this.onLeading);
  }

  where(key: string): string { return `${this.description}: data.${key}`; }

  canWrite(): boolean { return this.opts.leader ? this.opts.leader.isLeader() : true; }

  onChange(listener: (rec: CaRootRecord) => void): void { this.listeners.push(listener); }

  close(): void {
    this.closed = true;
    this.opts.leader?.off('leading', this.onLeading);
    this.reflector?.stop();
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  /** Sleep up to `ms`, or until a watch event on the Secret, leadership, or close(). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => { clearTimeout(timer); this.wakers.delete(done); resolve(); };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new CaError(`${this.description}: store closed before the CA root was loaded`);
  }

  private async get(name: string): Promise<Raw | undefined> {
    try {
      return await this.opts.client.request('GET', `${this.secretsPath}/${name}`, {}, undefined, 10_000);
    } catch (e) {
      if ((e as KubeApiError).statusCode === 404) return undefined;
      throw e;
    }
  }

  async pluggedIn(): Promise<PluggedInMaterial | undefined> {
    const source = `Secret ${this.opts.namespace}/${CACERTS_SECRET_NAME}`;
    let secret: Raw | undefined;
    for (let delay = 200; ; delay = Math.min(delay * 2, this.opts.retryMaxMs ?? 5000)) {
      this.checkOpen();
      try {
        secret = await this.get(CACERTS_SECRET_NAME);
        break;
      } catch (e) {
        if ((e as KubeApiError).statusCode === 403) {
          // Not allowed to read it: as if it were not mounted.
          this.opts.log?.warn({ secret: source, err: (e as Error).message }, 'CA: cannot read the plugged-in CA Secret; not using one');
          return undefined;
        }
        this.opts.log?.warn({ secret: source, err: (e as Error).message }, 'CA: reading the plugged-in CA Secret failed; retrying');
        await this.pause(delay);
      }
    }
    if (!secret) return undefined;
    const data: Record<string, unknown> = secret.data ?? {};
    if (ISTIO_GENERATED_KEY in data) {
      this.opts.log?.info({ secret: source }, 'CA: cacerts was generated by istiod (istio-generated); not a plugged-in CA');
      return undefined;
    }
    const files = Object.fromEntries(CACERTS_FILES.map((f) => [f, unb64(data[f])])) as Record<CacertsFile, string>;
    const missing = CACERTS_FILES.filter((f) => !files[f].trim());
    if (missing.length > 0) throw new CaError(`${source}: plugged-in CA (cacerts) is missing ${missing.map((f) => `data.${f}`).join(', ')}`);
    return { files, where: (f) => `${source}: data.${f}`, source };
  }

  /** The record in a Secret, or a CaError naming the Secret and the key that is missing. */
  private parse(secret: Raw): CaRootRecord {
    const data: Record<string, unknown> = secret.data ?? {};
    const caCertPem = unb64(data['ca-cert.pem']);
    const caKeyPem = unb64(data['ca-key.pem']);
    const missing = ['ca-cert.pem', 'ca-key.pem'].filter((k) => !unb64(data[k]).trim());
    if (missing.length > 0) throw new CaError(`${this.description}: missing ${missing.map((k) => `data.${k}`).join(', ')}`);
    const root = unb64(data['root-cert.pem']);
    return { caCertPem, caKeyPem, rootCertPem: root.trim() ? root : caCertPem };
  }

  private body(rec: CaRootRecord, base?: Raw): Raw {
    return {
      ...(base ?? {}),
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: base?.metadata ?? { name: CA_SECRET_NAME, namespace: this.opts.namespace },
      type: CA_SECRET_TYPE,
      data: {
        ...(base?.data ?? {}),
        // istiod's BuildSecret(CASecret, ns, certChain=nil, privateKey=nil, rootCert, caCert, caKey, istio.io/ca-root).
        'cert-chain.pem': '',
        'key.pem': '',
        'root-cert.pem': b64(rec.rootCertPem),
        'ca-cert.pem': b64(rec.caCertPem),
        'ca-key.pem': b64(rec.caKeyPem),
      },
    };
  }

  private startWatch(): void {
    if (this.reflector) return;
    const handle = (o: Raw | undefined, deleted: boolean): void => {
      this.wake();
      if (!this.current) return;
      if (deleted) { void this.restoreIfMissing(); return; }
      let rec: CaRootRecord;
      try { rec = this.parse(o!); } catch (e) {
        this.opts.log?.error({ secret: this.description, err: (e as Error).message }, 'CA: stored root unreadable; keeping the current one');
        return;
      }
      if (sameRecord(this.current, rec)) return;
      this.current = rec;
      for (const l of this.listeners) l(rec);
    };
    this.reflector = new Reflector(this.opts.client, SECRET_TYPE, {
      upsert: (_k, o) => { if (o.metadata?.name === CA_SECRET_NAME) handle(o, false); },
      delete: (k, o) => { if ((o?.metadata?.name ?? k.split('/')[1]) === CA_SECRET_NAME) handle(o, true); },
    }, {
      backoffInitialMs: 200, backoffMaxMs: 10_000, ...this.opts.reflector,
      namespace: this.opts.namespace, fieldSelector: `metadata.name=${CA_SECRET_NAME}`,
      onError: (e) => this.opts.log?.debug({ secret: this.description, err: e.message }, 'CA: watch of the root Secret failed; retrying'),
    });
    this.reflector.start();
  }

  async obtain(mint: () => Promise<CaRootRecord>): Promise<CaRootRecord> {
    this.startWatch();
    let waiting = false;
    const maxMs = this.opts.retryMaxMs ?? 5000;
    for (let delay = 200; ; delay = Math.min(delay * 2, maxMs)) {
      this.checkOpen();
      try {
        const secret = await this.get(CA_SECRET_NAME);
        if (secret) {
          const rec = this.parse(secret);
          this.opts.log?.info({ secret: this.description }, 'CA: loaded the root from the Secret');
          this.current = rec;
          return rec;
        }
        if (this.canWrite()) {
          const rec = await mint();
          this.checkOpen();
          try {
            await this.serial(() => this.opts.client.request('POST', this.secretsPath, {}, this.body(rec), 10_000));
            this.opts.log?.info({ secret: this.description }, 'CA: created the self-signed root Secret');
            this.current = rec;
            return rec;
          } catch (e) {
            if ((e as KubeApiError).statusCode !== 409) throw e;
            // Another replica created it first: theirs is the one root.
            this.opts.log?.info({ secret: this.description }, 'CA: the root Secret was created by another replica; loading it');
            delay = 200;
            continue;
          }
        }
        if (!waiting) {
          waiting = true;
          this.opts.log?.info({ secret: this.description }, 'CA: waiting for the leader to create the root Secret');
        }
        await this.pause(delay);
      } catch (e) {
        if (this.closed) this.checkOpen();
        // A Secret missing its keys stays as it is (never overwritten with a new root); so do server errors.
        this.opts.log?.error({ secret: this.description, err: (e as Error).message }, 'CA: cannot load the root Secret; retrying');
        await this.pause(delay);
      }
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn);
    this.writing = run.catch(() => undefined);
    return run;
  }

  /** Write a rotated root (leader only): read-modify-write on the latest resourceVersion, retried on a conflict. */
  async save(rec: CaRootRecord): Promise<void> {
    if (!this.canWrite()) throw new CaError(`${this.description}: only the leader writes it`);
    await this.serial(async () => {
      // Set first: our own write echoed by the watch is then no news (the CA adopts it after save resolves).
      const prev = this.current;
      this.current = rec;
      let lastErr: Error | undefined;
      try {
        for (let attempt = 0; attempt < 5; attempt++) {
          const secret = await this.get(CA_SECRET_NAME);
          try {
            if (secret) await this.opts.client.request('PUT', `${this.secretsPath}/${CA_SECRET_NAME}`, {}, this.body(rec, secret), 10_000);
            else await this.opts.client.request('POST', this.secretsPath, {}, this.body(rec), 10_000);
            this.opts.log?.info({ secret: this.description }, 'CA: wrote the rotated root to the Secret');
            return;
          } catch (e) {
            if ((e as KubeApiError).statusCode !== 409) throw e;
            lastErr = e as Error;
          }
        }
        throw new CaError(`${this.description}: update kept conflicting (${lastErr?.message ?? ''})`);
      } catch (e) {
        this.current = prev;
        throw e;
      }
    });
  }

  /** The leader puts back a Secret someone deleted, with the root in use (a new root would orphan every leaf). */
  private async restoreIfMissing(): Promise<void> {
    const rec = this.current;
    if (!rec || this.closed || !this.canWrite()) return;
    try {
      await this.serial(async () => {
        if (await this.get(CA_SECRET_NAME)) return;
        await this.opts.client.request('POST', this.secretsPath, {}, this.body(rec), 10_000);
        this.opts.log?.warn({ secret: this.description }, 'CA: the root Secret was missing; written back from memory');
      });
    } catch (e) {
      if ((e as KubeApiError).statusCode === 409) return;
      this.opts.log?.error({ secret: this.description, err: (e as Error).message }, 'CA: could not write back the root Secret');
    }
  }
}
