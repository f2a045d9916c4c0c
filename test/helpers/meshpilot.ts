/** Test helper: a real meshpilot server in this process, on loopback ports chosen by the OS. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { MeshpilotServer, defaultServerOptions, type ServerOptions } from '../../src/server.js';

export interface TestMesh {
  server: MeshpilotServer;
  dir: string;
  xdsAddress: string;
  write(file: string, yaml: string): void;
  remove(file: string): void;
  /** Wait until the debouncer has nothing pending and the push has run. */
  settle(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startMeshpilot(files: Record<string, string>, overrides: Partial<ServerOptions> = {}): Promise<TestMesh> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-test-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const server = new MeshpilotServer({
    ...defaultServerOptions(),
    configDirs: [dir],
    xdsPort: 0,
    monitoringPort: 0,
    host: '127.0.0.1',
    workers: 1,
    debounceAfterMs: 50,
    secureXdsPort: -1, // tests that need the CA / TLS port ask for it (port 0)
    logger: pino({ level: process.env.MESHPILOT_TEST_LOG ?? 'silent' }),
    ...overrides,
  });
  await server.start();
  return {
    server,
    dir,
    xdsAddress: `127.0.0.1:${server.xdsPort}`,
    write(file, yaml) {
      // Write via a temp file and rename, as editors do, so the watcher never sees half a file.
      const tmp = path.join(dir, `.${file}.tmp`);
      fs.writeFileSync(tmp, yaml);
      fs.renameSync(tmp, path.join(dir, file));
    },
    remove(file) { fs.rmSync(path.join(dir, file)); },
    async settle(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      await new Promise((r) => setTimeout(r, 120)); // let the watcher notice
      while (!server.idle()) {
        if (Date.now() > deadline) throw new Error('meshpilot did not settle');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Kubernetes Service with its Pods and EndpointSlices, as YAML. Each endpoint gets its own slice, because a
 * slice's ports apply to all its endpoints and test backends listen on different loopback ports.
 */
export function serviceYaml(opts: {
  name: string; namespace?: string; port: number; portName?: string; clusterIP?: string;
  /** The pods' service account (their SPIFFE identity in mTLS tests). */
  serviceAccount?: string;
  endpoints: Array<{ ip?: string; port: number; labels?: Record<string, string>; ready?: boolean }>;
}): string {
  const ns = opts.namespace ?? 'default';
  const portName = opts.portName ?? 'http';
  const docs = [`apiVersion: v1
kind: Service
metadata:
  name: ${opts.name}
  namespace: ${ns}
spec:
  clusterIP: ${opts.clusterIP ?? 'None'}
  selector: {app: ${opts.name}}
  ports:
  - name: ${portName}
    port: ${opts.port}
`];
  opts.endpoints.forEach((e, i) => {
    const ip = e.ip ?? '127.0.0.1';
    docs.push(`apiVersion: v1
kind: Pod
metadata:
  name: ${opts.name}-${i}
  namespace: ${ns}
  labels: ${JSON.stringify({ app: opts.name, ...(e.labels ?? {}) })}
spec:
  ${opts.serviceAccount ? `serviceAccountName: ${opts.serviceAccount}
  ` : ''}containers: [{name: app, image: app}]
status:
  phase: Running
  podIP: ${ip}
`, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${opts.name}-${i}
  namespace: ${ns}
  labels:
    kubernetes.io/service-name: ${opts.name}
addressType: IPv4
ports:
- name: ${portName}
  port: ${e.port}
endpoints:
- addresses: ["${ip}"]
  conditions: {ready: ${e.ready ?? true}}
  targetRef: {kind: Pod, name: ${opts.name}-${i}, namespace: ${ns}}
`);
  });
  return docs.join('---\n');
}
