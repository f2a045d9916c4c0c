/**
 * The secure xDS port's own certificate (istiod's DNS certificate for istiod.istio-system.svc), issued by our CA
 * and re-issued at half its life or when the root rotates, handed to grpc-js as a CertificateProvider so the TLS
 * context changes without closing the port or its streams. The same provider supplies the trust bundle that
 * client certificates are verified against.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log/logger.js';
import type { CertificateAuthority } from './ca.js';

type CaListener = (u: { caCertificate: Buffer } | null) => void;
type IdListener = (u: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** istiod's default DNS names for its serving certificate (pilot/pkg/bootstrap/istio_ca.go, certController). */
export function istiodDnsNames(namespace = 'istio-system', domainSuffix = 'cluster.local'): string[] {
  return [`istiod.${namespace}.svc`, `istiod.${namespace}.svc.${domainSuffix}`, `istiod-remote.${namespace}.svc`, `istio-pilot.${namespace}.svc`];
}

export class ServingCertificate implements grpc.experimental.CertificateProvider {
  private caListeners = new Set<CaListener>();
  private idListeners = new Set<IdListener>();
  private ca?: { caCertificate: Buffer };
  private id?: { certificate: Buffer; privateKey: Buffer };
  private timer?: NodeJS.Timeout;
  private closed = false;
  notAfter?: Date;
  rotations = 0;

  constructor(
    private readonly authority: CertificateAuthority,
    private readonly dnsNames: string[],
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {
    authority.on('rootsChanged', () => { this.refresh().catch((e) => this.log.error({ err: (e as Error).message }, 'serving certificate refresh failed')); });
  }

  async refresh(): Promise<void> {
    if (this.closed) return;
    const issued = await this.authority.issueKeyPair({ dns: this.dnsNames }, this.ttlMs);
    this.ca = { caCertificate: Buffer.from(this.authority.trustBundlePem()) };
    this.id = { certificate: Buffer.from(issued.certChain.join('')), privateKey: Buffer.from(issued.privateKeyPem) };
    this.notAfter = issued.notAfter;
    this.rotations++;
    for (const l of this.caListeners) l(this.ca);
    for (const l of this.idListeners) l(this.id);
    clearTimeout(this.timer);
    const life = issued.notAfter.getTime() - Date.now();
    this.timer = setTimeout(() => { this.refresh().catch((e) => this.log.error({ err: (e as Error).message }, 'serving certificate refresh failed')); }, Math.max(1000, life / 2));
    this.timer.unref();
    this.log.debug({ dnsNames: this.dnsNames, notAfter: issued.notAfter.toISOString() }, 'secure xDS port: serving certificate issued');
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Server credentials that request (not require) a client certificate: token callers of the CA have none. */
  credentials(): grpc.ServerCredentials {
    // Both arguments are this object, which serves CA and identity updates alike (grpc-js 1.14 swaps their order).
    return grpc.experimental.createCertificateProviderServerCredentials(this, this, false);
  }

  // The current value is delivered on the next tick: grpc-js registers its watcher only after adding listeners,
  // so a synchronous first update would be lost and the port would drop every connection.
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    setImmediate(() => { if (this.ca && this.caListeners.has(l)) l(this.ca); });
  }
  removeCaCertificateListener(l: CaListener): void { this.caListeners.delete(l); }
  addIdentityCertificateListener(l: IdListener): void {
    this.idListeners.add(l);
    setImmediate(() => { if (this.id && this.idListeners.has(l)) l(this.id); });
  }
  removeIdentityCertificateListener(l: IdListener): void { this.idListeners.delete(l); }
}
