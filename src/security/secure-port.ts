/**
 * The secure port (istiod's 15012): one TLS gRPC server carrying the CA service and ADS, with a serving
 * certificate from our CA. Client certificates are requested, verified against the trust bundle and — when
 * present — are the caller's identity for the CA and for SDS.
 */
import { listenGrpc, type GrpcListener } from '../xds/listen.js';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log/logger.js';
import { CertificateAuthority, type CaStore } from './ca.js';
import { ClientCertAuthenticator, TokenFileAuthenticator, type Authenticator } from './authenticate.js';
import { CertificateService } from './cert-service.js';
import { ServingCertificate, istiodDnsNames } from './serving-cert.js';

export interface SecurityOptions {
  port: number;
  host: string;
  caDir: string;
  /** Where the self-signed root lives instead of caDir (Kubernetes: the istio-ca-secret Secret). */
  caStore?: CaStore;
  caTokenFile?: string;
  trustDomain: string;
  workloadCertTtlMs: number;
  maxWorkloadCertTtlMs: number;
  /** Lifetime of a self-signed root created here (CITADEL_SELF_SIGNED_CA_CERT_TTL; default 10 years). */
  rootTtlMs?: number;
  /** Extra authenticators (the Kubernetes source adds TokenReview here). */
  authenticators?: Authenticator[];
}

/** Where the self-signed CA lives when no --ca-dir is given: a per-user state directory. */
export function defaultCaDir(): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'meshpilot', 'ca');
}

export class SecurePort {
  readonly server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.max_send_message_length': -1,
  });
  port = 0;
  ca!: CertificateAuthority;
  certService!: CertificateService;
  serving!: ServingCertificate;
  authenticators: Authenticator[] = [];

  constructor(private readonly opts: SecurityOptions, private readonly log: Logger) {}

  /** Load the CA and the serving certificate; services are added by the caller before listen(). */
  async init(): Promise<void> {
    const o = this.opts;
    this.ca = await CertificateAuthority.load({
      dir: o.caDir, store: o.caStore, trustDomain: o.trustDomain, defaultTtlMs: o.workloadCertTtlMs, maxTtlMs: o.maxWorkloadCertTtlMs, rootTtlMs: o.rootTtlMs, log: this.log,
    });
    this.authenticators = [new ClientCertAuthenticator(o.trustDomain)];
    if (o.caTokenFile) this.authenticators.push(new TokenFileAuthenticator(o.caTokenFile, o.trustDomain));
    this.authenticators.push(...(o.authenticators ?? []));
    this.certService = new CertificateService({ ca: this.ca, authenticators: this.authenticators, log: this.log });
    this.certService.register(this.server);
    this.serving = new ServingCertificate(this.ca, istiodDnsNames(), o.workloadCertTtlMs, this.log);
    await this.serving.refresh();
  }

  async listen(): Promise<number> {
    this.listener = await listenGrpc(this.server, this.opts.host, this.opts.port, this.serving.credentials());
    this.port = this.listener.port;
    return this.port;
  }

  private listener?: GrpcListener;

  stop(): void {
    this.serving?.close();
    this.listener?.close();
    this.server.forceShutdown();
  }
}
