/**
 * SDS over the ADS stream (istiod's pilot/pkg/xds/sds.go plus the istio-agent's SecretManager, which meshpilot
 * plays for proxies that reach it over mTLS): `default` (the workload's key and certificate for the identity in its
 * client certificate) and `ROOTCA` (the trust bundle).
 *
 * Secrets are per connection and per identity, so they are never put in the scope-keyed resource cache: this
 * module keeps its own per-stream watch state and writes its responses on the same gRPC stream, beside the
 * generated types (the ADS server ignores the Secret type, which it does not generate).
 *
 * Rotation: a `default` certificate is re-issued at half its life and pushed on the open stream; when the CA's root
 * rotates, ROOTCA (old and new roots) and a new `default` are pushed.
 */
import { createHash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log/logger.js';
import {
  deltaResourceEntry, frameDeltaResponse, frameDiscoveryResponse, resourceEntry, type DeltaDiscoveryRequest, type DiscoveryRequest,
} from '../proto/discovery.js';
import { encodeAny } from '../proto/encode.js';
import { SECRET_TYPE } from '../proto/type-urls.js';
import { SDS_CAPABLE_METADATA } from '../model/scope.js';
import type { CertificateAuthority, IssuedKeyPair } from './ca.js';
import { peerCertificateOf } from './authenticate.js';
import { parseSpiffeId, spiffeId, spiffeUrisFromSubjectAltName, type Identity } from './identity.js';

export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';
/** istio-agent's SECRET_GRACE_PERIOD_RATIO: rotate when half the certificate's life is left. */
export const GRACE_PERIOD_RATIO = 0.5;

export type ResolvedSecret = { kind: 'tls'; certChainPem: string; privateKeyPem: string } | { kind: 'ca'; caPem: string };

/** Extra secrets by name (credentialName for gateways), resolved for a proxy's verified namespace. */
export interface SecretSource {
  /** undefined when the name is unknown; throws when the proxy may not have it. */
  resolve(name: string, proxyNamespace: string): ResolvedSecret | undefined;
  /** Re-read the backing store; true when secrets may have changed (then open streams are re-evaluated). */
  scan?(): boolean;
}

export interface SdsOptions {
  ca: CertificateAuthority;
  trustDomain: string;
  log: Logger;
  sources?: SecretSource[];
}

type Writer = { write(b: Buffer): boolean };

class SdsStream {
  names: string[] = [];
  nonceSent?: string;
  versionSent?: string;
  nonce = 0;
  workload?: IssuedKeyPair;
  issuedAt = 0;
  timer?: NodeJS.Timeout;
  closed = false;
  namespace = '';
  nodeId = '';
  pushes = 0;

  constructor(readonly identity: Identity | undefined, readonly out: Writer, readonly delta: boolean) {}
}

export class SdsServer {
  private readonly streams = new Set<SdsStream>();
  /** Counters for tests and debug. */
  stats = { pushes: 0, rotations: 0, refused: 0 };

  private readonly poll?: NodeJS.Timeout;

  constructor(private readonly opts: SdsOptions) {
    if ((opts.sources ?? []).some((src) => src.scan)) {
      // File-backed credentials: re-read once a second and push to streams whose secrets changed (istiod pushes on
      // Secret events).
      this.poll = setInterval(() => this.rescan(), 1000);
      this.poll.unref();
    }
    opts.ca.on('rootsChanged', () => {
      for (const s of this.streams) {
        if (s.closed || s.names.length === 0) continue;
        this.issueWorkload(s)
          .then(() => this.respond(s, 'root rotation'))
          .catch((e) => this.opts.log.error({ proxy: s.nodeId, err: (e as Error).message }, 'SDS: push after root rotation failed'));
      }
    });
  }

  /**
   * Wrap a gRPC server so that every ADS stream it serves is also tapped for Secret requests. The ADS server's
   * own handlers run unchanged (they ignore the Secret type).
   */
  tap(server: grpc.Server): Pick<grpc.Server, 'addService'> {
    return {
      addService: (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => {
        const wrapped: grpc.UntypedServiceImplementation = {};
        for (const [method, handler] of Object.entries(impl)) {
          const delta = method === 'DeltaAggregatedResources';
          wrapped[method] = method === 'StreamAggregatedResources' || delta
            ? (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) => { this.attach(call, delta); (handler as (c: unknown) => void)(call); }
            : handler;
        }
        server.addService(def, wrapped);
      },
    };
  }

  /** Watch an ADS stream for Secret requests. Identity is the verified client certificate's SPIFFE ID. */
  attach(call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>, delta = false): void {
    let identity: Identity | undefined;
    const cert = peerCertificateOf(call);
    for (const uri of spiffeUrisFromSubjectAltName(cert?.subjectaltname)) {
      try {
        const id = parseSpiffeId(uri);
        if (id.trustDomain === this.opts.trustDomain) { identity = id; break; }
      } catch { /* not a workload identity */ }
    }
    const s = new SdsStream(identity, call, delta);
    this.streams.add(s);
    const close = (): void => {
      if (s.closed) return;
      s.closed = true;
      clearTimeout(s.timer);
      this.streams.delete(s);
    };
    let chain = Promise.resolve();
    call.on('data', (raw: DiscoveryRequest | DeltaDiscoveryRequest) => {
      const req = delta ? this.fromDelta(s, raw as DeltaDiscoveryRequest) : raw as DiscoveryRequest;
      // Runs before the ADS handler parses the node: tell generation whether secrets can reach this proxy (a value
      // the client sent under this key is overwritten).
      if (req.node) req.node.metadata[SDS_CAPABLE_METADATA] = s.identity ? 'true' : 'false';
      if (req.node?.id && !s.nodeId) {
        s.nodeId = req.node.id;
        const ns = req.node.metadata?.NAMESPACE;
        s.namespace = typeof ns === 'string' ? ns : (req.node.id.split('~')[2]?.split('.').pop() ?? '');
      }
      if (req.typeUrl !== SECRET_TYPE) return;
      chain = chain.then(() => this.onRequest(s, req)).catch((e) => {
        this.opts.log.error({ proxy: s.nodeId, err: (e as Error).message }, 'SDS: request failed');
      });
    });
    call.on('end', close);
    call.on('error', close);
    call.on('close', close);
    call.on('cancelled', close);
  }

  /**
   * A delta request as the state-of-the-world one it amounts to: the subscribed set after this request, and the
   * nonce only when it is a pure ACK (a changed subscription must be answered).
   */
  private fromDelta(s: SdsStream, d: DeltaDiscoveryRequest): DiscoveryRequest {
    if (d.typeUrl !== SECRET_TYPE) return { versionInfo: '', node: d.node, resourceNames: [], typeUrl: d.typeUrl, responseNonce: d.responseNonce };
    const names = new Set(s.names);
    for (const n of d.subscribe) names.add(n);
    for (const n of d.unsubscribe) names.delete(n);
    const changed = d.subscribe.length > 0 || d.unsubscribe.length > 0;
    return {
      versionInfo: '', node: d.node, resourceNames: [...names], typeUrl: d.typeUrl,
      responseNonce: changed ? '' : d.responseNonce, errorDetail: d.errorDetail,
    };
  }

  private async onRequest(s: SdsStream, req: DiscoveryRequest): Promise<void> {
    const log = this.opts.log;
    if (req.errorDetail) {
      log.warn({ proxy: s.nodeId, type: 'SDS', nonce: req.responseNonce, err: req.errorDetail.message }, 'SDS: NACK');
      return;
    }
    if (req.responseNonce !== '' && req.responseNonce !== s.nonceSent) return; // stale
    const names = [...req.resourceNames].sort();
    const changed = names.join(',') !== s.names.join(',');
    if (req.responseNonce !== '' && !changed) return; // ACK
    s.names = names;
    if (!s.identity && names.length > 0) {
      this.stats.refused++;
      log.warn({ proxy: s.nodeId, names }, 'SDS: secrets need an mTLS connection with a client certificate from this CA; not sent');
      return;
    }
    if (names.includes(WORKLOAD_SECRET) && !s.workload) await this.issueWorkload(s);
    this.respond(s, req.responseNonce === '' ? 'initial' : 'resubscribe');
  }

  private async issueWorkload(s: SdsStream): Promise<void> {
    if (!s.identity) return;
    const { ca } = this.opts;
    s.workload = await ca.issueKeyPair({ uris: [spiffeId(s.identity)] }, ca.defaultTtlMs);
    s.issuedAt = Date.now();
    clearTimeout(s.timer);
    const life = s.workload.notAfter.getTime() - s.issuedAt;
    s.timer = setTimeout(() => {
      if (s.closed) return;
      this.issueWorkload(s).then(() => {
        this.stats.rotations++;
        this.respond(s, 'rotation');
      }).catch((e) => this.opts.log.error({ proxy: s.nodeId, err: (e as Error).message }, 'SDS: rotation failed'));
    }, Math.max(500, life * GRACE_PERIOD_RATIO));
    s.timer.unref();
  }

  private secretFor(s: SdsStream, name: string): Record<string, unknown> | undefined {
    if (name === WORKLOAD_SECRET && s.workload) {
      return {
        name,
        tls_certificate: {
          certificate_chain: { inline_bytes: Buffer.from(s.workload.certChain.join('')) },
          private_key: { inline_bytes: Buffer.from(s.workload.privateKeyPem) },
        },
      };
    }
    if (name === ROOT_SECRET) {
      return { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(this.opts.ca.trustBundlePem()) } } };
    }
    // Credentials are looked up in the namespace of the verified identity, never the one the node claims.
    if (!s.identity) return undefined;
    for (const src of this.opts.sources ?? []) {
      try {
        const found = src.resolve(name, s.identity.namespace);
        if (!found) continue;
        if (found.kind === 'ca') return { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(found.caPem) } } };
        return {
          name,
          tls_certificate: {
            certificate_chain: { inline_bytes: Buffer.from(found.certChainPem) },
            private_key: { inline_bytes: Buffer.from(found.privateKeyPem) },
          },
        };
      } catch (e) {
        this.stats.refused++;
        this.opts.log.warn({ proxy: s.nodeId, secret: name, err: (e as Error).message }, 'SDS: secret refused');
        return undefined;
      }
    }
    this.opts.log.warn({ proxy: s.nodeId, secret: name }, 'SDS: secret not found');
    return undefined;
  }

  private respond(s: SdsStream, reason: string, onlyIfChanged = false): void {
    if (s.closed) return;
    const entries: Buffer[] = [];
    const hash = createHash('sha256');
    const sent: string[] = [];
    for (const name of s.names) {
      const secret = this.secretFor(s, name);
      if (!secret) continue;
      const any = encodeAny({ '@type': SECRET_TYPE, ...secret });
      hash.update(any);
      entries.push(s.delta
        ? deltaResourceEntry(name, createHash('sha256').update(any).digest('base64url').slice(0, 16), resourceEntry(any))
        : resourceEntry(any));
      sent.push(name);
    }
    // The version is a digest of what is sent, never the secret material itself.
    const version = hash.digest('base64url').slice(0, 16);
    if (onlyIfChanged && version === s.versionSent) return;
    const nonce = `sds-${++s.nonce}`;
    s.nonceSent = nonce;
    s.versionSent = version;
    s.pushes++;
    this.stats.pushes++;
    s.out.write(s.delta ? frameDeltaResponse(version, entries, SECRET_TYPE, [], nonce) : frameDiscoveryResponse(version, entries, SECRET_TYPE, nonce));
    this.opts.log.info({
      proxy: s.nodeId, identity: s.identity ? spiffeId(s.identity) : undefined, secrets: sent, version, reason,
      notAfter: s.workload?.notAfter.toISOString(),
    }, 'SDS: push');
  }

  private rescan(): void {
    let changed = false;
    for (const src of this.opts.sources ?? []) {
      try { if (src.scan?.()) changed = true; } catch (e) { this.opts.log.error({ err: (e as Error).message }, 'SDS: reading credentials failed'); }
    }
    if (!changed) return;
    for (const s of this.streams) {
      if (!s.closed && s.names.some((n) => n !== WORKLOAD_SECRET && n !== ROOT_SECRET)) this.respond(s, 'credentials changed', true);
    }
  }

  close(): void {
    clearInterval(this.poll);
    for (const s of this.streams) { s.closed = true; clearTimeout(s.timer); }
    this.streams.clear();
  }
}

/** Decode an SDS response's secrets for tests and debug output, with private keys redacted. */
export function redactSecret(secret: Record<string, any>): Record<string, any> {
  const copy = JSON.parse(JSON.stringify(secret));
  if (copy.tls_certificate?.private_key) copy.tls_certificate.private_key = { inline_bytes: '[redacted]' };
  return copy;
}

