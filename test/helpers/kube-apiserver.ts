/**
 * Test helper: a real Kubernetes API server (kube-apiserver built by scripts/install-kube-apiserver.sh, backed by
 * Debian's etcd) on loopback ports, with static-token authentication, and `kubectl` as the writer. No scheduler or controllers run: tests write
 * Pods, their status and EndpointSlices themselves, as the kubelet and the EndpointSlice controller would.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
export const KUBE_APISERVER_BIN = path.join(ROOT, '.peers', 'kube-apiserver');

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, cmd);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/** Why the real API server cannot run here, or undefined when it can. */
export function realApiServerMissing(): string | undefined {
  if (!fs.existsSync(KUBE_APISERVER_BIN)) return `no ${KUBE_APISERVER_BIN} (scripts/install-kube-apiserver.sh builds it)`;
  if (!which('etcd')) return 'no etcd on PATH (Debian etcd-server)';
  if (!which('kubectl')) return 'no kubectl on PATH (the writer)';
  return undefined;
}

export interface RealApiServer {
  url: string;
  kubeconfigPath: string;
  token: string;
  /** `kubectl apply --server-side` of one object. */
  apply(obj: Record<string, any>): Promise<void>;
  /** Write a Pod's status (the kubelet's job). */
  setPodStatus(ns: string, name: string, status: Record<string, any>): Promise<void>;
  delete(resource: string, ns: string | undefined, name: string): Promise<void>;
  kubectl(args: string[], stdin?: string): Promise<string>;
  /** Stop kube-apiserver (etcd keeps the data) and start it again on the same port: every watch drops. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function waitExit(p: ChildProcess, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => { p.kill('SIGKILL'); resolve(); }, ms);
    p.once('exit', () => { clearTimeout(t); resolve(); });
  });
}

function get(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    https.get(url, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); })
      .on('error', () => resolve(0));
  });
}

export async function startRealApiServer(): Promise<RealApiServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-apiserver-'));
  const token = crypto.randomBytes(16).toString('hex');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(path.join(dir, 'tokens.csv'), `${token},admin,uid-admin,"system:masters"\n`);
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const log = fs.openSync(path.join(dir, 'log'), 'a');
  const etcd = spawn('etcd', [
    '--data-dir', path.join(dir, 'etcd'), '--listen-client-urls', `http://127.0.0.1:${etcdPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`, '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
  ], { stdio: ['ignore', log, log] });
  const apiArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`, `--secure-port=${apiPort}`, '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1', `--cert-dir=${path.join(dir, 'certs')}`,
    `--service-account-issuer=https://kubernetes.default.svc`, `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`, `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
    '--authorization-mode=AlwaysAllow', '--service-cluster-ip-range=10.96.0.0/16', '--disable-admission-plugins=ServiceAccount',
  ];
  let api = spawn(KUBE_APISERVER_BIN, apiArgs, { stdio: ['ignore', log, log] });
  const url = `https://127.0.0.1:${apiPort}`;
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfigPath, `apiVersion: v1
kind: Config
clusters:
- name: real
  cluster: {server: "${url}", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "${token}"}
contexts:
- name: real
  context: {cluster: real, user: admin}
current-context: real
`);
  const stop = async (): Promise<void> => {
    api.kill('SIGTERM'); await waitExit(api, 5000);
    etcd.kill('SIGTERM'); await waitExit(etcd, 5000);
    fs.closeSync(log);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while ((await get(`${url}/readyz`, token)) !== 200) {
      if (Date.now() > deadline || api.exitCode !== null || etcd.exitCode !== null) {
        const tail = fs.readFileSync(path.join(dir, 'log'), 'utf8').slice(-2000);
        await stop();
        throw new Error(`kube-apiserver did not become ready:\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await waitReady();
  const restart = async (): Promise<void> => {
    api.kill('SIGTERM');
    await waitExit(api, 10_000);
    api = spawn(KUBE_APISERVER_BIN, apiArgs, { stdio: ['ignore', log, log] });
    await waitReady();
  };
  const kubectlBin = which('kubectl');
  const kubectl = (args: string[], stdin?: string): Promise<string> => new Promise((resolve, reject) => {
    if (!kubectlBin) { reject(new Error('kubectl is not on PATH')); return; }
    const child = execFile(kubectlBin, ['--kubeconfig', kubeconfigPath, ...args], (err, stdout, stderr) => (err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
  return {
    url, kubeconfigPath, token, kubectl, stop, restart,
    async apply(obj) { await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify(obj)); },
    async setPodStatus(ns, name, status) {
      await kubectl(['patch', 'pod', name, '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    },
    async delete(resource, ns, name) { await kubectl(['delete', resource, name, ...(ns ? ['-n', ns] : []), '--wait=false']); },
  };
}
