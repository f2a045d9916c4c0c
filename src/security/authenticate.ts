/**
 * Who is calling the CA or the secure xDS port (istiod's security/pkg/server/ca/authenticate). Each authenticator
 * looks at one kind of credential; the first that accepts wins, and if none does the caller is unauthenticated.
 *
 * File mode has two: a token list (`--ca-token-file`, lines `TOKEN NAMESPACE SERVICEACCOUNT`, sent as
 * `authorization: Bearer TOKEN`) and a client certificate issued by our CA. The Kubernetes source plugs in a
 * third (a service-account JWT checked with TokenReview) by implementing the same Authenticator interface.
 */
import fs from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { MeshpilotError } from '../config/errors.js';
import { parseSpiffeId, spiffeUrisFromSubjectAltName, validateIdentity, type Identity } from './identity.js';

export class AuthenticationError extends MeshpilotError {
  override readonly code = 'ERR_UNAUTHENTICATED';
}

export interface Caller {
  identities: Identity[];
  /** Which authenticator accepted the caller (for logs). */
  via: string;
}

export interface AuthRequest {
  metadata: grpc.Metadata;
  /** The TLS peer certificate, present only when it verified against our trust bundle. */
  peerCertificate?: PeerCertificate;
}

export interface Authenticator {
  readonly name: string;
  /** undefined: this credential kind is absent. Throws AuthenticationError when it is present but invalid. */
  authenticate(req: AuthRequest): Promise<Caller | undefined>;
}

/** The verified peer certificate of a call over TLS (grpc-js reports it only when the chain verified). */
export function peerCertificateOf(call: { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } }): PeerCertificate | undefined {
  try { return call.getAuthContext?.().sslPeerCertificate; } catch { return undefined; }
}

export class ClientCertAuthenticator implements Authenticator {
  readonly name = 'ClientCertAuthenticator';
  constructor(private readonly trustDomain: string) {}

  async authenticate(req: AuthRequest): Promise<Caller | undefined> {
    if (!req.peerCertificate) return undefined;
    const uris = spiffeUrisFromSubjectAltName(req.peerCertificate.subjectaltname);
    const identities: Identity[] = [];
    for (const u of uris) {
      try {
        const id = parseSpiffeId(u);
        if (id.trustDomain === this.trustDomain) identities.push(id);
      } catch { /* a non-workload URI SAN (for example istiod's own DNS cert has none) */ }
    }
    if (identities.length === 0) throw new AuthenticationError(`client certificate carries no spiffe://${this.trustDomain}/ns/…/sa/… identity`);
    return { identities, via: this.name };
  }
}

interface TokenEntry { digest: Buffer; identity: Identity }

export function bearerToken(md: grpc.Metadata): string | undefined {
  const v = md.get('authorization')[0];
  if (typeof v !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(v);
  return m ? m[1] : undefined;
}

/** A static token list; the file is re-read when it changes, so tokens can be added or revoked without a restart. */
export class TokenFileAuthenticator implements Authenticator {
  readonly name = 'TokenFileAuthenticator';
  private entries: TokenEntry[] = [];
  private loadedMtime = -1;

  constructor(private readonly file: string, private readonly trustDomain: string) {
    this.reload();
  }

  private reload(): void {
    const st = fs.statSync(this.file);
    if (st.mtimeMs === this.loadedMtime) return;
    const entries: TokenEntry[] = [];
    fs.readFileSync(this.file, 'utf8').split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const f = line.split(/\s+/);
      if (f.length !== 3) throw new AuthenticationError(`${this.file}:${i + 1}: expected "TOKEN NAMESPACE SERVICEACCOUNT"`);
      let identity: Identity;
      try {
        identity = validateIdentity({ trustDomain: this.trustDomain, namespace: f[1]!, serviceAccount: f[2]! });
      } catch (e) {
        throw new AuthenticationError(`${this.file}:${i + 1}: ${(e as Error).message}`);
      }
      entries.push({ digest: createHash('sha256').update(f[0]!).digest(), identity });
    });
    this.entries = entries;
    this.loadedMtime = st.mtimeMs;
  }

  async authenticate(req: AuthRequest): Promise<Caller | undefined> {
    const token = bearerToken(req.metadata);
    if (token === undefined) return undefined;
    this.reload();
    const d = createHash('sha256').update(token).digest();
    // Compare digests in constant time, and look at every entry, so timing says nothing about which tokens exist.
    let found: Identity | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d) && !found) found = e.identity;
    if (!found) throw new AuthenticationError('bearer token is not in the token list');
    return { identities: [found], via: this.name };
  }
}

/** Run the authenticators in order; UNAUTHENTICATED (as AuthenticationError) with every reason when none accepts. */
export async function authenticateCaller(authenticators: readonly Authenticator[], req: AuthRequest): Promise<Caller> {
  const reasons: string[] = [];
  for (const a of authenticators) {
    try {
      const c = await a.authenticate(req);
      if (c) return c;
      reasons.push(`${a.name}: no credential`);
    } catch (e) {
      reasons.push(`${a.name}: ${(e as Error).message}`);
    }
  }
  throw new AuthenticationError(`request authenticate failure: ${reasons.join('; ')}`);
}
