/**
 * Proxyless gRPC mTLS and authorization with real grpc-js-xds peers: a server built with XdsServer +
 * XdsServerCredentials and clients with XdsChannelCredentials, each with certificates from our CA kept in files by
 * WorkloadCertFiles (as istio-agent does for the bootstrap's file_watcher certificate provider). PeerAuthentication
 * STRICT puts mTLS on the server's inbound listener (xds.istio.io/grpc/lds/inbound/…), DestinationRule ISTIO_MUTUAL
 * on the client's cluster (SAN = the server's SPIFFE ID), and AuthorizationPolicy becomes the server's RBAC filter
 * (GRPC_XDS_EXPERIMENTAL_RBAC=true).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { freePort } from '../helpers/ports.js';
import { ECHO_PATH, callWho, eventually } from '../helpers/grpc-backend.js';
import { WorkloadCertFiles } from '../../src/security/workload-agent.js';

// grpc-js-xds reads its feature switches when it is first loaded.
process.env.GRPC_XDS_EXPERIMENTAL_RBAC = 'true';
const grpcXds = await import('@grpc/grpc-js-xds');
grpcXds.register();

const BOOTSTRAP_KEY = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';
const TARGET = 'xds:///echo.default.svc.cluster.local:7070';
const identity = (b: Buffer): Buffer => b;

let mesh: TestMesh;
let tmp: string;
let echoPort: number;
let server: InstanceType<typeof grpcXds.XdsServer>;
const agents: WorkloadCertFiles[] = [];
const clients: grpc.Client[] = [];

function meshYaml(port: number): string {
  return `${serviceYaml({ name: 'echo', port: 7070, portName: 'grpc', serviceAccount: 'echo', endpoints: [{ port }] })}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: echo-strict, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  mtls: {mode: STRICT}
`;
}

const ALLOW_SLEEP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-allow-sleep, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {paths: ["${ECHO_PATH}"]}}]
`;

const DENY_SLEEP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-deny-sleep, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - from: [{source: {namespaces: ["default"], principals: ["*/sa/sleep"]}}]
`;

function bootstrap(nodeId: string, labels: Record<string, string>, files?: WorkloadCertFiles['files']): string {
  return JSON.stringify({
    xds_servers: [{ server_uri: mesh.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: nodeId, metadata: { GENERATOR: 'grpc', NAMESPACE: 'default', LABELS: labels, ISTIO_VERSION: '1.29.0' }, locality: {} },
    server_listener_resource_name_template: 'xds.istio.io/grpc/lds/inbound/%s',
    certificate_providers: files ? {
      default: {
        plugin_name: 'file_watcher',
        config: { certificate_file: files.certChain, private_key_file: files.key, ca_certificate_file: files.root, refresh_interval: '1s' },
      },
    } : {},
  });
}

async function workloadFiles(sa: string): Promise<WorkloadCertFiles> {
  const dir = fs.mkdtempSync(path.join(tmp, `${sa}-`));
  const rootPem = fs.readFileSync(path.join(tmp, 'ca', 'istio-ca-secret', 'root-cert.pem'), 'utf8');
  const a = new WorkloadCertFiles(dir, { address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem, token: `tok-${sa}` },
    `spiffe://cluster.local/ns/default/sa/${sa}`);
  await a.start();
  agents.push(a);
  return a;
}

async function xdsClient(sa: string, mtls: boolean): Promise<grpc.Client> {
  const files = mtls ? (await workloadFiles(sa)).files : undefined;
  const creds = mtls ? new grpcXds.XdsChannelCredentials(grpc.credentials.createInsecure()) : grpc.credentials.createInsecure();
  const c = new grpc.Client(TARGET, creds, { [BOOTSTRAP_KEY]: bootstrap(`sidecar~127.0.0.2~${sa}-0.default~default.svc.cluster.local`, { app: sa }, files) });
  clients.push(c);
  return c;
}

async function outcome(c: grpc.Client): Promise<string> {
  try { return await callWho(c, new grpc.Metadata(), 2000); } catch (e) { return grpc.status[(e as grpc.ServiceError).code]!; }
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-grpc-mtls-'));
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-echo default echo\ntok-sleep default sleep\ntok-other default other\n');
  echoPort = await freePort();
  mesh = await startMeshpilot({ 'echo.yaml': meshYaml(echoPort), 'authz.yaml': ALLOW_SLEEP }, {
    secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens'),
  });
  const echoFiles = await workloadFiles('echo');
  server = new grpcXds.XdsServer({ [BOOTSTRAP_KEY]: bootstrap('sidecar~127.0.0.1~echo-0.default~default.svc.cluster.local', { app: 'echo' }, echoFiles.files) } as grpc.ServerOptions);
  server.addService({ Who: { path: ECHO_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } }, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const peer = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? 'plaintext';
      cb(null, Buffer.from(`echo to ${peer}`));
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${echoPort}`,
    new grpcXds.XdsServerCredentials(grpc.ServerCredentials.createInsecure()), (e) => (e ? reject(e) : resolve())));
});

after(async () => {
  for (const c of clients) c.close();
  for (const a of agents) a.stop();
  server?.forceShutdown();
  await mesh?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('mTLS with certificates from our CA; AuthorizationPolicy allows sleep and denies other identities', async () => {
  const sleep = await xdsClient('sleep', true);
  let answer = '';
  await eventually(async () => { answer = await outcome(sleep); return answer.startsWith('echo'); }, 10_000, 200);
  assert.equal(answer, 'echo to URI:spiffe://cluster.local/ns/default/sa/sleep', 'the server saw the client certificate from our CA');

  const other = await xdsClient('other', true);
  let denied = '';
  await eventually(async () => { denied = await outcome(other); return denied !== 'UNAVAILABLE'; }, 10_000, 200);
  assert.equal(denied, 'PERMISSION_DENIED', 'RBAC ALLOW only for sa/sleep');

  // STRICT: a plaintext client cannot talk to the server at all.
  const plain = await xdsClient('plain', false);
  const r = await outcome(plain);
  assert.equal(r, 'UNAVAILABLE');
});

test('AuthorizationPolicy changes take effect on the running server: DENY by principal', async () => {
  const sleep = await xdsClient('sleep', true);
  await eventually(async () => (await outcome(sleep)).startsWith('echo'), 10_000, 200);
  mesh.write('deny.yaml', DENY_SLEEP);
  await eventually(async () => (await outcome(sleep)) === 'PERMISSION_DENIED', 5000, 100);
  mesh.remove('deny.yaml');
  await eventually(async () => (await outcome(sleep)).startsWith('echo'), 5000, 100);
});
