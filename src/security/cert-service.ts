/**
 * istio.v1.auth.IstioCertificateService/CreateCertificate (istio.io/api security/v1alpha1/ca.proto), as istiod's
 * security/pkg/server/ca/server.go: authenticate the caller, refuse impersonation, sign the CSR for the caller's
 * own identity, answer leaf + chain + root.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { Logger } from '../log/logger.js';
import { jsonToStruct, structToJson } from '../proto/encode.js';
import { authenticateCaller, peerCertificateOf, type Authenticator, type Caller } from './authenticate.js';
import { CaRequestError, CertificateAuthority } from './ca.js';
import { parseSpiffeId, sameIdentity, spiffeId } from './identity.js';

export interface IstioCertificateRequest {
  csr: string;
  /** Seconds; 0 means the CA's default. */
  validityDuration: number;
  metadata: Record<string, unknown>;
}

export interface IstioCertificateResponse { certChain: string[] }

/** istiod's security.ImpersonatedIdentity metadata key (only node-authorized callers may use it in istiod). */
export const IMPERSONATED_IDENTITY = 'ImpersonatedIdentity';

let protoRoot: protobuf.Root | undefined;
function types(): { req: protobuf.Type; res: protobuf.Type } {
  if (!protoRoot) {
    protoRoot = new protobuf.Root();
    // The well-known Struct first: fromJSON/addJSON resolve eagerly.
    protoRoot.addJSON(protobuf.common.get('google/protobuf/struct.proto')!.nested!);
    protoRoot.addJSON({
        istio: { nested: { v1: { nested: { auth: { nested: {
          IstioCertificateRequest: {
            fields: {
              csr: { type: 'string', id: 1 },
              validity_duration: { type: 'int64', id: 2 },
              metadata: { type: 'google.protobuf.Struct', id: 3 },
            },
          },
          IstioCertificateResponse: { fields: { cert_chain: { rule: 'repeated', type: 'string', id: 1 } } },
        } } } } } },
    });
    protoRoot.resolveAll();
  }
  return {
    req: protoRoot.lookupType('istio.v1.auth.IstioCertificateRequest'),
    res: protoRoot.lookupType('istio.v1.auth.IstioCertificateResponse'),
  };
}

export function encodeCertificateRequest(r: IstioCertificateRequest): Buffer {
  const t = types().req;
  return Buffer.from(t.encode(t.fromObject({ csr: r.csr, validity_duration: r.validityDuration, metadata: jsonToStruct(r.metadata) })).finish());
}

export function decodeCertificateRequest(b: Buffer): IstioCertificateRequest {
  const m = types().req.decode(b) as unknown as { csr?: string; validity_duration?: number | { toNumber(): number }; metadata?: unknown };
  const vd = m.validity_duration;
  return {
    csr: m.csr ?? '',
    validityDuration: typeof vd === 'object' && vd !== null ? vd.toNumber() : Number(vd ?? 0),
    metadata: structToJson(m.metadata),
  };
}

export function encodeCertificateResponse(r: IstioCertificateResponse): Buffer {
  const t = types().res;
  return Buffer.from(t.encode(t.fromObject({ cert_chain: r.certChain })).finish());
}

export function decodeCertificateResponse(b: Buffer): IstioCertificateResponse {
  const m = types().res.decode(b) as unknown as { cert_chain?: string[] };
  return { certChain: m.cert_chain ?? [] };
}

export const CERTIFICATE_SERVICE: grpc.ServiceDefinition = {
  CreateCertificate: {
    path: '/istio.v1.auth.IstioCertificateService/CreateCertificate',
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeCertificateRequest,
    requestDeserialize: decodeCertificateRequest,
    responseSerialize: encodeCertificateResponse,
    responseDeserialize: decodeCertificateResponse,
  },
};

/** A client for CERTIFICATE_SERVICE (what istio-agent is; tests and the proxyless-gRPC cert writer use it). */
export const CertificateServiceClient = grpc.makeGenericClientConstructor(CERTIFICATE_SERVICE, 'IstioCertificateService');

export interface CertServiceOptions {
  ca: CertificateAuthority;
  authenticators: readonly Authenticator[];
  log: Logger;
}

type Failure = { code: grpc.status; details: string };

export class CertificateService {
  issued = 0;
  refused = 0;
  /** CSRs received, answered or not (citadel_server_csr_count). */
  received = 0;

  constructor(private readonly opts: CertServiceOptions) {}

  register(server: grpc.Server): void {
    server.addService(CERTIFICATE_SERVICE, {
      CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: grpc.sendUnaryData<IstioCertificateResponse>) => {
        this.create(call).then(
          (res) => cb(null, res),
          (f: Failure) => cb({ code: f.code, details: f.details } as grpc.ServiceError),
        );
      },
    });
  }

  private fail(code: grpc.status, details: string, caller?: Caller): Failure {
    this.refused++;
    this.opts.log.warn({ code: grpc.status[code], caller: caller?.identities.map(spiffeId) }, `CA: CreateCertificate refused: ${details}`);
    return { code, details };
  }

  private async create(call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>): Promise<IstioCertificateResponse> {
    const { ca, authenticators, log } = this.opts;
    const req = call.request;
    this.received++;
    let caller: Caller;
    try {
      caller = await authenticateCaller(authenticators, { metadata: call.metadata, peerCertificate: peerCertificateOf(call) });
    } catch (e) {
      throw this.fail(grpc.status.UNAUTHENTICATED, (e as Error).message);
    }
    const own = caller.identities[0]!;
    const impersonated = req.metadata[IMPERSONATED_IDENTITY];
    if (typeof impersonated === 'string' && impersonated !== '') {
      let asked;
      try { asked = parseSpiffeId(impersonated); } catch (e) {
        throw this.fail(grpc.status.INVALID_ARGUMENT, `metadata ${IMPERSONATED_IDENTITY}: ${(e as Error).message}`, caller);
      }
      if (!caller.identities.some((id) => sameIdentity(id, asked))) {
        throw this.fail(grpc.status.PERMISSION_DENIED, `caller ${spiffeId(own)} may not request a certificate for ${impersonated}`, caller);
      }
    }
    for (const uri of CertificateAuthority.csrSpiffeUris(req.csr)) {
      const mine = caller.identities.some((id) => spiffeId(id) === uri);
      if (!mine) throw this.fail(grpc.status.PERMISSION_DENIED, `CSR asks for identity ${uri}, but the caller is ${spiffeId(own)}`, caller);
    }
    let ttlMs: number;
    try { ttlMs = ca.resolveTtl(req.validityDuration); } catch (e) {
      throw this.fail(grpc.status.INVALID_ARGUMENT, (e as Error).message, caller);
    }
    try {
      const issued = await ca.signCsr(req.csr, { uris: caller.identities.map(spiffeId) }, ttlMs);
      this.issued++;
      log.info({ identity: spiffeId(own), via: caller.via, notAfter: issued.notAfter.toISOString() }, 'CA: certificate issued');
      const root = ca.trustBundlePem();
      // istiod answers leaf, the CA chain, and the root cert last; the bundle keeps a rotating root's predecessor.
      return { certChain: [...issued.certChain.filter((c, i) => i === 0 || !root.includes(c.trim())), root] };
    } catch (e) {
      if (e instanceof CaRequestError) throw this.fail(grpc.status.INVALID_ARGUMENT, e.message, caller);
      throw this.fail(grpc.status.INTERNAL, `signing failed: ${(e as Error).message}`, caller);
    }
  }
}
