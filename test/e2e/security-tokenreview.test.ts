/**
 * The CA authenticating Kubernetes service-account JWTs with TokenReview: a real KubeClient (src/sources/kube)
 * against an HTTP API server that answers TokenReviews; the reviewed service account is the only identity the
 * caller can get.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { caClient, createCertificate, generateCsr } from '../../src/security/workload-agent.js';
import { KubeJwtAuthenticator } from '../../src/security/authenticate-kube.js';
import { KubeClient, loadKubeConfig } from '../../src/sources/kube/kube-client.js';

let mesh: TestMesh;
let api: http.Server;
let tmp: string;
const reviews: any[] = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-tokenreview-'));
  api = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') { res.writeHead(404).end(); return; }
      const review = JSON.parse(body);
      reviews.push({ review, auth: req.headers.authorization });
      const token = review.spec.token as string;
      const status = token === 'jwt-reviews' ? { authenticated: true, user: { username: 'system:serviceaccount:default:reviews' }, audiences: review.spec.audiences }
        : token === 'jwt-human' ? { authenticated: true, user: { username: 'alice@example.com' } }
          : { authenticated: false, error: 'invalid bearer token, token lookup failed' };
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ ...review, status }));
    });
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
  mesh = await startMeshpilot({}, { secureXdsPort: 0, caDir: path.join(tmp, 'ca') });
  const kc = loadKubeConfig({ yaml: `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: istiod-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
` });
  // What server.ts does when a Kubernetes config cluster is configured.
  mesh.server.secure!.authenticators.push(new KubeJwtAuthenticator(new KubeClient(kc), 'cluster.local'));
});

after(async () => {
  await mesh?.stop();
  api?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('a service-account JWT accepted by TokenReview gets a certificate for that service account only', async () => {
  const rootPem = mesh.server.secure!.ca.trustBundlePem();
  const client = caClient({ address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem });
  try {
    const { csrPem } = await generateCsr(['spiffe://cluster.local/ns/default/sa/reviews']);
    const res = await createCertificate(client, { csr: csrPem, validityDuration: 0, metadata: {} }, 'jwt-reviews');
    assert.match(new X509Certificate(res.certChain[0]!).subjectAltName ?? '', /URI:spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews/);
    assert.deepEqual(reviews[0].review.spec, { token: 'jwt-reviews', audiences: ['istio-ca'] });
    assert.equal(reviews[0].auth, 'Bearer istiod-token', 'istiod authenticates to the API server with its own credentials');

    const other = await generateCsr(['spiffe://cluster.local/ns/prod/sa/payments']);
    await assert.rejects(createCertificate(client, { csr: other.csrPem, validityDuration: 0, metadata: {} }, 'jwt-reviews'),
      (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED);
    await assert.rejects(createCertificate(client, { csr: csrPem, validityDuration: 0, metadata: {} }, 'jwt-forged'),
      (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED && /TokenReview: token not authenticated \(invalid bearer token/.test(e.details));
    await assert.rejects(createCertificate(client, { csr: csrPem, validityDuration: 0, metadata: {} }, 'jwt-human'),
      (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED && /alice@example.com is not a service account/.test(e.details));
  } finally {
    client.close();
  }
});
