/**
 * The certificate authority: Istio's file-mode CA (security/pkg/pki/ca). Two sources of the signing key:
 *
 * - plugged-in: Istio's `cacerts` layout in `--ca-dir` — ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem;
 * - self-signed: created on first start and kept in a CaStore — `--ca-dir/istio-ca-secret/` (ca-store-dir.ts) or,
 *   with a Kubernetes config cluster, the `istio-ca-secret` Secret written only by the leader (ca-store-kube.ts),
 *   as istiod's NewSelfSignedIstioCAOptions: ca-cert.pem, ca-key.pem, and root-cert.pem — the trust bundle, which
 *   during a root rotation holds the new root and the previous one, so leaves of both verify (overlap).
 * A plugged-in CA (cacerts in --ca-dir, else the `cacerts` Secret of the store) takes precedence, as in istiod.
 *
 * Leaves carry only a SAN (URI spiffe://… and/or DNS), key usage digitalSignature+keyEncipherment and extended key
 * usage serverAuth+clientAuth, as istiod's GenCertFromCSR.
 */
import { EventEmitter } from 'node:events';
import { createPublicKey, webcrypto, X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { MeshpilotError } from '../config/errors.js';
import type { Logger } from '../log/logger.js';
import {
  generateWorkloadKey, parsePrivateKeyPem, privateKeyPem, randomSerial, splitPemCertificates, toSigningKey, x509,
} from './x509.js';
import { DirCaStore } from './ca-store-dir.js';

export class CaError extends MeshpilotError {
  override readonly code: string = 'ERR_CA';
}
/** A request the CA refuses because of what it asks for (istiod's caerror.CSRError / TTLError → INVALID_ARGUMENT). */
export class CaRequestError extends CaError {
  override readonly code = 'ERR_CA_REQUEST';
}
/** A write to the CA's store asked of a replica that may not write it (only the leader writes istio-ca-secret). */
export class CaNotWriterError extends CaError {
  override readonly code = 'ERR_CA_NOT_WRITER';
}

export const DEFAULT_WORKLOAD_CERT_TTL_MS = 24 * 3600_000;
export const MAX_WORKLOAD_CERT_TTL_MS = 90 * 24 * 3600_000;
/** istiod's CITADEL_SELF_SIGNED_CA_CERT_TTL default: 10 years. */
export const SELF_SIGNED_ROOT_TTL_MS = 3650 * 24 * 3600_000;
/** istiod backdates leaves so that a peer whose clock is a little behind still accepts them. */
const CLOCK_SKEW_MS = 60_000;
export const SELF_SIGNED_SECRET_DIR = 'istio-ca-secret';
/** Istio's plugged-in CA layout (the `cacerts` Secret / directory). */
export const CACERTS_FILES = ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'] as const;
export type CacertsFile = typeof CACERTS_FILES[number];

/** What a self-signed CA persists — istiod's istio-ca-secret keys. Holds a private key: never log it. */
export interface CaRootRecord {
  /** ca-cert.pem: the root that signs. */
  caCertPem: string;
  /** ca-key.pem: its private key. */
  caKeyPem: string;
  /** root-cert.pem: the trust bundle, newest first (the previous root stays during a rotation's overlap). */
  rootCertPem: string;
}

/** A plugged-in CA's four PEM texts, and how to name each in an error (a file path, a Secret key). */
export interface PluggedInMaterial {
  files: Record<CacertsFile, string>;
  where(file: CacertsFile): string;
  /** The whole source, e.g. `--ca-dir DIR` or `Secret istio-system/cacerts`. */
  source: string;
}

/**
 * Where the CA's material lives. `obtain` loads the stored root or, where this instance may write, has `mint`
 * create one and stores it; when two writers race, the one stored first wins and the other adopts it.
 */
export interface CaStore {
  /** For logs and errors, e.g. `Secret istio-system/istio-ca-secret`. Never the contents. */
  readonly description: string;
  /** Names one key of the stored root in an error. */
  where(key: string): string;
  /** Istio's `cacerts`, if this store has a plugged-in CA (a partial one is a CaError naming what is missing). */
  pluggedIn(): Promise<PluggedInMaterial | undefined>;
  obtain(mint: () => Promise<CaRootRecord>): Promise<CaRootRecord>;
  /** Replace the stored root (rotation). Only where canWrite(). */
  save(rec: CaRootRecord): Promise<void>;
  /** May this instance write (the leader in Kubernetes)? */
  canWrite(): boolean;
  /** A root stored by another instance after obtain (the leader's rotation): the CA adopts it. */
  onChange(listener: (rec: CaRootRecord) => void): void;
  close(): void;
}

export interface CaOptions {
  /** --ca-dir: plugged-in cacerts, else (without `store`) where the self-signed root is kept. */
  dir: string;
  /** Where the self-signed root lives (and a second place to look for cacerts); default: a DirCaStore on `dir`. */
  store?: CaStore;
  trustDomain: string;
  defaultTtlMs?: number;
  maxTtlMs?: number;
  /** Lifetime of a self-signed root (tests use seconds to exercise root rotation). */
  rootTtlMs?: number;
  log?: Logger;
}

export interface IssuedCertificate {
  /** leaf, then the CA's chain up to and including the root, as istiod's CreateCertificate response. */
  certChain: string[];
  /** The leaf alone (PEM). */
  leafPem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface IssuedKeyPair extends IssuedCertificate {
  /** PKCS#8 PEM. Never logged; see redact() for anything that prints a secret. */
  privateKeyPem: string;
}

export interface SanSet { uris?: string[]; dns?: string[]; ips?: string[] }

interface SigningMaterial {
  cert: x509.X509Certificate;
  certPem: string;
  key: KeyObject;
  cryptoKey: CryptoKey;
  signAlg: Algorithm;
  /** Intermediates between the signing cert and the root (plugged-in cert-chain.pem minus the signing cert and root). */
  chainPems: string[];
}

function samePublicKey(certPem: string, key: KeyObject): boolean {
  const a = new NodeX509(certPem).publicKey.export({ format: 'der', type: 'spki' });
  const b = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return Buffer.compare(a, b) === 0;
}

export class CertificateAuthority extends EventEmitter {
  mode: 'self-signed' | 'plugged-in' = 'self-signed';
  private signing!: SigningMaterial;
  private store!: CaStore;
  /** Roots trusted right now, newest first (more than one only during a root rotation's overlap). */
  private roots: string[] = [];
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly rootTtlMs: number;

  private constructor(readonly opts: CaOptions) {
    super();
    this.defaultTtlMs = opts.defaultTtlMs ?? DEFAULT_WORKLOAD_CERT_TTL_MS;
    this.maxTtlMs = opts.maxTtlMs ?? MAX_WORKLOAD_CERT_TTL_MS;
    this.rootTtlMs = opts.rootTtlMs ?? SELF_SIGNED_ROOT_TTL_MS;
  }

  /** Load the plugged-in CA or the stored self-signed one, creating the latter on first start. */
  static async load(opts: CaOptions): Promise<CertificateAuthority> {
    const ca = new CertificateAuthority(opts);
    const dirStore = new DirCaStore(opts.dir);
    const store = opts.store ?? dirStore;
    ca.store = store;
    const plugged = (await dirStore.pluggedIn()) ?? (store !== dirStore ? await store.pluggedIn() : undefined);
    if (plugged) {
      await ca.loadPluggedIn(plugged);
    } else {
      await ca.loadOrCreateSelfSigned(store);
    }
    opts.log?.info({ mode: ca.mode, store: plugged?.source ?? store.description, root: ca.rootFingerprint(), trustDomain: opts.trustDomain }, 'CA ready');
    return ca;
  }

  private async loadPluggedIn(m: PluggedInMaterial): Promise<void> {
    const certPem = m.files['ca-cert.pem'];
    let key: KeyObject;
    try { key = parsePrivateKeyPem(m.files['ca-key.pem']); } catch (e) {
      throw new CaError(`${m.where('ca-key.pem')}: not a private key (${(e as Error).message})`);
    }
    const roots = splitPemCertificates(m.files['root-cert.pem']);
    if (roots.length === 0) throw new CaError(`${m.where('root-cert.pem')}: no certificate`);
    const chain = splitPemCertificates(m.files['cert-chain.pem']);
    this.mode = 'plugged-in';
    await this.setSigning(certPem, key, m.where('ca-cert.pem'));
    // cert-chain.pem is the signing cert up to the root; the response lists what lies between (istiod sends it whole
    // minus nothing, but a duplicate root is harmless to drop).
    const signingDer = this.signing.cert.rawData;
    this.signing.chainPems = chain.filter((c) => {
      const der = new x509.X509Certificate(c).rawData;
      return Buffer.compare(Buffer.from(der), Buffer.from(signingDer)) !== 0 && !roots.includes(c);
    });
    this.roots = roots;
    await this.checkChainsToRoot(m.source);
  }

  private async checkChainsToRoot(source: string): Promise<void> {
    const chainCerts = [this.signing.certPem, ...this.signing.chainPems, ...this.roots].map((p) => new x509.X509Certificate(p));
    const builder = new x509.X509ChainBuilder({ certificates: chainCerts });
    const built = await builder.build(this.signing.cert);
    const top = built[built.length - 1];
    if (!top || !this.roots.some((r) => new x509.X509Certificate(r).equal(top))) {
      throw new CaError(`${source}: ca-cert.pem does not chain to a certificate in root-cert.pem`);
    }
  }

  private async loadOrCreateSelfSigned(store: CaStore): Promise<void> {
    this.mode = 'self-signed';
    const rec = await store.obtain(() => this.mintRoot());
    await this.adopt(rec, store);
    store.onChange((next) => { void this.onStoredRoot(next, store); });
  }

  /** A root another instance stored (the leader rotated): sign with it and trust its bundle from now on. */
  private async onStoredRoot(rec: CaRootRecord, store: CaStore): Promise<void> {
    if (rec.caCertPem.trim() === this.signing.certPem.trim() && splitPemCertificates(rec.rootCertPem).join('') === this.roots.join('')) return;
    const old = this.rootFingerprint();
    try {
      await this.adopt(rec, store);
    } catch (e) {
      // Never discard the root in use for a bad one.
      this.opts.log?.error({ store: store.description, err: (e as Error).message }, 'CA: stored root refused; keeping the current one');
      return;
    }
    this.opts.log?.info({ store: store.description, oldRoot: old, newRoot: this.rootFingerprint(), bundle: this.roots.length }, 'CA: root reloaded from the store');
    this.emit('rootsChanged');
  }

  /** Sign with a stored root; trust it and the still-valid roots of its bundle. */
  private async adopt(rec: CaRootRecord, store: CaStore): Promise<void> {
    let key: KeyObject;
    try { key = parsePrivateKeyPem(rec.caKeyPem); } catch (e) {
      throw new CaError(`${store.where('ca-key.pem')}: not a private key (${(e as Error).message})`);
    }
    await this.setSigning(rec.caCertPem, key, store.where('ca-cert.pem'));
    const certPem = this.signing.certPem;
    const now = new Date();
    const bundle = splitPemCertificates(rec.rootCertPem);
    this.roots = [certPem, ...bundle.filter((c) => c.trim() !== certPem.trim() && new Date(new NodeX509(c).validTo) > now)];
  }

  /** A new self-signed root; its bundle keeps the roots trusted now (a rotation's overlap). Nothing is stored here. */
  private async mintRoot(): Promise<CaRootRecord> {
    const { privateKey } = generateWorkloadKey();
    const { cryptoKey, signAlg } = await toSigningKey(privateKey);
    const publicKey = await webcrypto.subtle.importKey('spki', createPublicKey(privateKey).export({ format: 'der', type: 'spki' }),
      { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']) as unknown as CryptoKey;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `O=${this.opts.trustDomain}`,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + this.rootTtlMs),
      keys: { privateKey: cryptoKey, publicKey },
      signingAlgorithm: signAlg,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ],
    });
    const certPem = `${cert.toString('pem')}\n`;
    return { caCertPem: certPem, caKeyPem: privateKeyPem(privateKey), rootCertPem: [certPem, ...this.roots].join('') };
  }

  private async setSigning(certPem: string, key: KeyObject, where: string): Promise<void> {
    let cert: x509.X509Certificate;
    try { cert = new x509.X509Certificate(certPem); } catch (e) {
      throw new CaError(`${where}: not a certificate (${(e as Error).message})`);
    }
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw new CaError(`${where}: not a CA certificate (basicConstraints CA:TRUE missing)`);
    if (!samePublicKey(certPem, key)) throw new CaError(`${where}: certificate does not match its private key`);
    if (cert.notAfter.getTime() <= Date.now()) throw new CaError(`${where}: CA certificate expired at ${cert.notAfter.toISOString()}`);
    const { cryptoKey, signAlg } = await toSigningKey(key);
    this.signing = { cert, certPem: certPem.endsWith('\n') ? certPem : `${certPem}\n`, key, cryptoKey, signAlg, chainPems: [] };
  }

  /**
   * Root rotation for the self-signed CA (istiod's SelfSignedCARootCertRotator): a new root signs from now on; the
   * previous root stays in the trust bundle until it expires, so existing leaves keep verifying.
   */
  async rotateRoot(): Promise<void> {
    if (this.mode !== 'self-signed') throw new CaError('root rotation applies to the self-signed CA only; replace cacerts to rotate a plugged-in CA');
    if (!this.store.canWrite()) {
      throw new CaNotWriterError(`root rotation: only the leader writes ${this.store.description}; this replica picks up the leader's rotation`);
    }
    const old = this.rootFingerprint();
    const rec = await this.mintRoot();
    // Stored before it signs anything: other replicas must know a root before leaves chain to it.
    await this.store.save(rec);
    await this.adopt(rec, this.store);
    this.opts.log?.info({ oldRoot: old, newRoot: this.rootFingerprint(), bundle: this.roots.length, store: this.store.description }, 'CA: root rotated');
    this.emit('rootsChanged');
  }

  /** The roots a peer should trust (PEM bundle, newest first). */
  trustBundlePem(): string { return this.roots.join(''); }

  rootCount(): number { return this.roots.length; }

  rootFingerprint(): string { return new NodeX509(this.signingRootPem()).fingerprint256; }

  /** Serial and validity of the root the signing certificate chains to (for the root rotator and logs; no key). */
  signingRootInfo(): { serialNumber: string; notBefore: Date; notAfter: Date; fingerprint: string } {
    const c = new NodeX509(this.signingRootPem());
    return { serialNumber: c.serialNumber, notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo), fingerprint: c.fingerprint256 };
  }

  /** Would rotateRoot() be allowed here: a self-signed CA whose store this instance writes (the leader in Kubernetes)? */
  canRotateRoot(): boolean { return this.mode === 'self-signed' && this.store.canWrite(); }

  /** The root the current signing certificate chains to. */
  private signingRootPem(): string {
    return this.mode === 'self-signed' ? this.signing.certPem : this.roots[0]!;
  }

  /** Resolve a requested lifetime as istiod does: ≤0 means the default; above the maximum is refused. */
  resolveTtl(requestedSeconds: number): number {
    if (!Number.isFinite(requestedSeconds) || requestedSeconds <= 0) return this.defaultTtlMs;
    const ms = requestedSeconds * 1000;
    if (ms > this.maxTtlMs) {
      throw new CaRequestError(`requested TTL ${requestedSeconds}s is greater than the max allowed TTL ${this.maxTtlMs / 1000}s`);
    }
    return ms;
  }

  /** Sign a CSR for the given SANs (the caller's identities — never the names the CSR asks for). */
  async signCsr(csrPem: string, sans: SanSet, ttlMs: number): Promise<IssuedCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    try { csr = new x509.Pkcs10CertificateRequest(csrPem); } catch (e) {
      throw new CaRequestError(`CSR is not a valid PKCS#10 request: ${(e as Error).message}`);
    }
    let valid = false;
    try { valid = await csr.verify(); } catch { valid = false; }
    if (!valid) throw new CaRequestError('CSR signature does not verify with its own public key');
    return this.issue(csr.publicKey, sans, ttlMs);
  }

  /** The URIs a CSR asks for in its subjectAltName extension request (to refuse impersonation). */
  static csrSpiffeUris(csrPem: string): string[] {
    try {
      const csr = new x509.Pkcs10CertificateRequest(csrPem);
      const ext = csr.getExtension('2.5.29.17');
      if (!ext) return [];
      const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
      return san.names.items.filter((n) => n.type === 'url').map((n) => n.value);
    } catch {
      return [];
    }
  }

  /** Generate a key and a certificate for it (SDS for proxies, the xDS port's serving certificate). */
  async issueKeyPair(sans: SanSet, ttlMs: number): Promise<IssuedKeyPair> {
    const { privateKey, publicKey } = generateWorkloadKey();
    const pub = new x509.PublicKey(publicKey.export({ format: 'der', type: 'spki' }));
    const issued = await this.issue(pub, sans, ttlMs);
    return { ...issued, privateKeyPem: privateKeyPem(privateKey) };
  }

  private async issue(publicKey: x509.PublicKey, sans: SanSet, ttlMs: number): Promise<IssuedCertificate> {
    const names: Array<{ type: 'url' | 'dns' | 'ip'; value: string }> = [
      ...(sans.uris ?? []).map((value) => ({ type: 'url' as const, value })),
      ...(sans.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(sans.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    if (names.length === 0) throw new CaRequestError('no identity to put in the certificate');
    const s = this.signing;
    const now = Date.now();
    const notBefore = new Date(now - CLOCK_SKEW_MS);
    // A leaf never outlives the certificate that signs it.
    const notAfter = new Date(Math.min(now + ttlMs, s.cert.notAfter.getTime()));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: '',
      issuer: s.cert.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: s.cryptoKey,
      signingAlgorithm: s.signAlg,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(s.cert),
        // The subject is empty, so the SAN must be critical (RFC 5280 4.2.1.6).
        new x509.SubjectAlternativeNameExtension(names, true),
      ],
    });
    const leafPem = `${cert.toString('pem')}\n`;
    const chain = this.mode === 'plugged-in'
      ? [leafPem, s.certPem, ...s.chainPems, this.roots[0]!]
      : [leafPem, s.certPem];
    return { certChain: chain, leafPem, notBefore, notAfter };
  }
}
