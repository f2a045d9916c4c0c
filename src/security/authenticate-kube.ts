/**
 * Kubernetes service-account JWTs checked with the TokenReview API (istiod's KubeJWTAuthenticator,
 * security/pkg/server/ca/authenticate/kubeauth): the API server says whether the token is valid for our
 * audience and whose it is (`system:serviceaccount:NS:SA`), which becomes the caller's SPIFFE identity.
 */
import { AuthenticationError, bearerToken, type AuthRequest, type Authenticator, type Caller } from './authenticate.js';
import { validateIdentity } from './identity.js';

/** What this needs of a Kubernetes client (src/sources/kube's KubeClient has it). */
export interface TokenReviewClient {
  request(method: string, path: string, query?: Record<string, string | number | undefined>, body?: unknown): Promise<any>;
}

/** istiod's default audience for the CA (the istio-token projected volume). */
export const ISTIO_CA_AUDIENCE = 'istio-ca';
const SA_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

export class KubeJwtAuthenticator implements Authenticator {
  readonly name = 'KubeJWTAuthenticator';

  constructor(private readonly client: TokenReviewClient, private readonly trustDomain: string, private readonly audiences = [ISTIO_CA_AUDIENCE]) {}

  async authenticate(req: AuthRequest): Promise<Caller | undefined> {
    const token = bearerToken(req.metadata);
    if (token === undefined) return undefined;
    let review: any;
    try {
      review = await this.client.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {}, {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: this.audiences },
      });
    } catch (e) {
      throw new AuthenticationError(`TokenReview failed: ${(e as Error).message}`);
    }
    const status = review?.status ?? {};
    if (status.authenticated !== true) throw new AuthenticationError(`TokenReview: token not authenticated${status.error ? ` (${status.error})` : ''}`);
    const m = SA_USER.exec(String(status.user?.username ?? ''));
    if (!m) throw new AuthenticationError(`TokenReview: ${status.user?.username ?? 'unknown user'} is not a service account`);
    return { identities: [validateIdentity({ trustDomain: this.trustDomain, namespace: m[1]!, serviceAccount: m[2]! })], via: this.name };
  }
}
