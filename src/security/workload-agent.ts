/**
 * The client side of the CA, as istio-agent does it for proxyless gRPC: make a key and a CSR, call
 * CreateCertificate over TLS, and keep PEM files (cert-chain.pem, key.pem, root-cert.pem) fresh for a gRPC
 * bootstrap's `file_watcher` certificate provider — re-requested at half the certificate's life.
 */
import fs from 'node:fs';
import path from 'node:path';
import { webcrypto, createPrivateKey } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { x509 } from './x509.js';
import { CertificateServiceClient, type IstioCertificateRequest, type IstioCertificateResponse } from './cert-service.js';
import { GRACE_PERIOD_RATIO } from './sds.js';

/** istiod's serving certificate names; clients dial 127.0.0.1 in tests and check this name. */
export const ISTIOD_SAN = 'istiod.istio-system.svc';

export async function generateCsr(sanUris: string[]): Promise<{ csrPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as unknown as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: alg,
    extensions: sanUris.length > 0 ? [new x509.SubjectAlternativeNameExtension(sanUris.map((value) => ({ type: 'url' as const, value })))] : [],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  return { csrPem: csr.toString('pem'), keyPem };
}

export interface CaClientOptions {
  address: string;
  /** PEM of the roots that issued the CA's serving certificate (our own trust bundle). */
  rootPem: string;
  token?: string;
  /** Authenticate with a certificate from our CA instead of (or besides) a token. */
  clientCert?: { certChainPem: string; keyPem: string };
}

export function caClient(o: CaClientOptions): grpc.Client {
  const creds = grpc.credentials.createSsl(
    Buffer.from(o.rootPem),
    o.clientCert ? Buffer.from(o.clientCert.keyPem) : null,
    o.clientCert ? Buffer.from(o.clientCert.certChainPem) : null,
  );
  return new CertificateServiceClient(o.address, creds, { 'grpc.ssl_target_name_override': ISTIOD_SAN, 'grpc.default_authority': ISTIOD_SAN });
}

export function createCertificate(client: grpc.Client, req: IstioCertificateRequest, token?: string): Promise<IstioCertificateResponse> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    (client as unknown as {
      CreateCertificate(r: IstioCertificateRequest, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: IstioCertificateResponse) => void): void;
    }).CreateCertificate(req, md, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

export interface CertFiles { certChain: string; key: string; root: string }

/** Writes and renews a workload's PEM files for a gRPC `file_watcher` certificate provider. */
export class WorkloadCertFiles {
  readonly files: CertFiles;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  renewals = 0;
  notAfter?: Date;

  constructor(dir: string, private ca: CaClientOptions, private readonly identity: string, private readonly ttlSeconds = 0) {
    this.files = { certChain: path.join(dir, 'cert-chain.pem'), key: path.join(dir, 'key.pem'), root: path.join(dir, 'root-cert.pem') };
  }

  async start(): Promise<void> { await this.renew(); }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const { csrPem, keyPem } = await generateCsr([this.identity]);
    const client = caClient(this.ca);
    try {
      const res = await createCertificate(client, { csr: csrPem, validityDuration: this.ttlSeconds, metadata: {} }, this.ca.token);
      const chain = res.certChain;
      const root = chain[chain.length - 1]!;
      const write = (p: string, text: string, mode: number): void => {
        const tmp = `${p}.tmp`;
        fs.writeFileSync(tmp, text, { mode });
        fs.renameSync(tmp, p);
      };
      // Key first: a watcher that sees the new chain must find its key.
      write(this.files.key, keyPem, 0o600);
      write(this.files.certChain, chain.slice(0, -1).join(''), 0o644);
      write(this.files.root, root, 0o644);
      this.ca = { ...this.ca, rootPem: root };
      const leaf = new x509.X509Certificate(chain[0]!);
      this.notAfter = leaf.notAfter;
      this.renewals++;
      const life = leaf.notAfter.getTime() - Date.now();
      this.schedule(Math.max(500, life * GRACE_PERIOD_RATIO));
    } finally {
      client.close();
    }
  }

  /** Renew after `ms`; a failed renewal (CA unreachable) is retried every second while the old files stay. */
  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.renew().catch(() => this.schedule(1000)); }, ms);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
