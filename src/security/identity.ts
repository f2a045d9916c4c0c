/**
 * Workload identities as SPIFFE IDs (`spiffe://TRUST_DOMAIN/ns/NS/sa/SA`), as Istio's pkg/spiffe. One module knows
 * the format; everything else passes Identity values around.
 */
import { MeshpilotError } from '../config/errors.js';

export interface Identity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export class IdentityError extends MeshpilotError {
  override readonly code = 'ERR_IDENTITY';
}

const SPIFFE_PREFIX = 'spiffe://';
/** DNS-1123 label, what Kubernetes allows for namespaces; service account names are DNS subdomains. */
const NS_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SA_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function spiffeId(id: Identity): string {
  return `${SPIFFE_PREFIX}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export function parseSpiffeId(uri: string): Identity {
  if (!uri.startsWith(SPIFFE_PREFIX)) throw new IdentityError(`identity "${uri}": not a spiffe:// URI`);
  const parts = uri.slice(SPIFFE_PREFIX.length).split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa' || !parts[0]) {
    throw new IdentityError(`identity "${uri}": expected spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`);
  }
  return validateIdentity({ trustDomain: parts[0], namespace: parts[2]!, serviceAccount: parts[4]! });
}

export function validateIdentity(id: Identity): Identity {
  if (!NS_RE.test(id.namespace)) throw new IdentityError(`namespace "${id.namespace}" is not a valid Kubernetes namespace name`);
  if (!SA_RE.test(id.serviceAccount)) throw new IdentityError(`service account "${id.serviceAccount}" is not a valid name`);
  return id;
}

/**
 * The SPIFFE URIs in a Node tls PeerCertificate's `subjectaltname` ("URI:spiffe://…, DNS:…"). Node escapes
 * values that contain separators by quoting them; SPIFFE IDs never need that.
 */
export function spiffeUrisFromSubjectAltName(san: string | undefined): string[] {
  if (!san) return [];
  return san.split(/,\s*/).filter((p) => p.startsWith(`URI:${SPIFFE_PREFIX}`)).map((p) => p.slice(4));
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}
