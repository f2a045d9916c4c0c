/**
 * Test helper: an in-memory HTTP server that speaks the Kubernetes API server's list/watch wire protocol, for the
 * real @kubernetes/client-node to talk to (no kube-apiserver installs from this machine's registries).
 *
 * What it follows (k8s.io/apiserver semantics):
 * - one resourceVersion counter for every object, bumped on each write, returned on objects and lists;
 * - lists: `limit` + `continue` paging served from a snapshot taken at the first page (as etcd serves a paged
 *   list at one revision), `labelSelector` (equality terms), `metadata.resourceVersion` of the snapshot;
 *   an expired continue token answers 410 Gone (reason Expired);
 * - watches: `?watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N`, chunked JSON lines
 *   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}`, headers flushed at once; events after RV are
 *   replayed from a history window, and RV older than the window gets an ERROR event with a Status of code 410
 *   ("too old resource version") on a 200 response — or, with `gone410AsHttp`, a plain HTTP 410;
 *   resourceVersion "" or "0" starts with synthetic ADDED events for the current state;
 * - writes over HTTP (POST/PUT/DELETE with optimistic concurrency: 409 Conflict on a stale resourceVersion) for
 *   Leases and anything else;
 * - a bearer token, when configured, is required on every request (401 otherwise).
 * Test hooks: drop every watch connection mid-stream, compact the history (so resuming watchers get 410), expire
 * continue tokens, send bookmarks, count requests.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: any }; [k: string]: any };

/** A resource collection: `api/v1/pods` or `apis/networking.istio.io/v1/virtualservices`. */
interface Collection { prefix: string; namespaced: boolean; objects: Map<string, Obj> }

interface WatchEvent { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Obj }

interface Watcher { collection: string; namespace?: string; selector: Array<[string, string]>; res: http.ServerResponse; bookmarks: boolean }

const PLURALS: Record<string, { prefix: string; namespaced: boolean }> = {
  Service: { prefix: 'api/v1/services', namespaced: true },
  Pod: { prefix: 'api/v1/pods', namespaced: true },
  Endpoints: { prefix: 'api/v1/endpoints', namespaced: true },
  Namespace: { prefix: 'api/v1/namespaces', namespaced: false },
  Node: { prefix: 'api/v1/nodes', namespaced: false },
  Secret: { prefix: 'api/v1/secrets', namespaced: true },
  ConfigMap: { prefix: 'api/v1/configmaps', namespaced: true },
  EndpointSlice: { prefix: 'apis/discovery.k8s.io/v1/endpointslices', namespaced: true },
  Lease: { prefix: 'apis/coordination.k8s.io/v1/leases', namespaced: true },
  VirtualService: { prefix: 'apis/networking.istio.io/v1/virtualservices', namespaced: true },
  DestinationRule: { prefix: 'apis/networking.istio.io/v1/destinationrules', namespaced: true },
  ServiceEntry: { prefix: 'apis/networking.istio.io/v1/serviceentries', namespaced: true },
  WorkloadEntry: { prefix: 'apis/networking.istio.io/v1/workloadentries', namespaced: true },
  Gateway: { prefix: 'apis/networking.istio.io/v1/gateways', namespaced: true },
  Sidecar: { prefix: 'apis/networking.istio.io/v1/sidecars', namespaced: true },
  PeerAuthentication: { prefix: 'apis/security.istio.io/v1/peerauthentications', namespaced: true },
  AuthorizationPolicy: { prefix: 'apis/security.istio.io/v1/authorizationpolicies', namespaced: true },
  RequestAuthentication: { prefix: 'apis/security.istio.io/v1/requestauthentications', namespaced: true },
};

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function objKey(o: Obj): string { return `${o.metadata.namespace ?? ''}/${o.metadata.name}`; }

export interface FakeApiServerOptions {
  token?: string;
  /** How many past events a watch can resume from (etcd's compaction window). */
  historyLimit?: number;
  /** Answer a too-old watch resourceVersion with HTTP 410 instead of a 200 + ERROR event. */
  gone410AsHttp?: boolean;
  /** Collections that are not served (404), e.g. Istio CRDs not installed. */
  missing?: string[];
}

export class FakeApiServer {
  private readonly server: http.Server;
  private readonly collections = new Map<string, Collection>();
  private rv = 1;
  private history: WatchEvent[] = [];
  /** Oldest resourceVersion a watch may resume from. */
  private floor = 1;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly snapshots = new Map<string, Obj[]>();
  private snapshotSeq = 0;
  port = 0;
  /** Requests served, by "list PREFIX" / "watch PREFIX" / "METHOD PREFIX". */
  readonly requests = new Map<string, number>();
  /** Writes refused while true (503), to simulate an unavailable server without closing the port. */
  unavailable = false;
  /** Watches answered 200 and closed at once (a misbehaving proxy in front of the server). */
  closeWatchesAtOnce = false;

  constructor(private readonly opts: FakeApiServerOptions = {}) {
    for (const { prefix, namespaced } of Object.values(PLURALS)) {
      if (!opts.missing?.includes(prefix)) this.collections.set(prefix, { prefix, namespaced, objects: new Map() });
    }
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string { return `http://127.0.0.1:${this.port}`; }

  /** A kubeconfig for this server, as a YAML string (plain HTTP needs insecure-skip-tls-verify in client-node). */
  kubeconfig(context = 'fake'): string {
    return `apiVersion: v1
kind: Config
clusters:
- name: ${context}
  cluster: {server: "${this.url}", insecure-skip-tls-verify: true}
users:
- name: ${context}
  user: {token: "${this.opts.token ?? 'none'}"}
contexts:
- name: ${context}
  context: {cluster: ${context}, user: ${context}}
current-context: ${context}
`;
  }

  /** Writes the kubeconfig to a temp file and returns its path. */
  kubeconfigFile(context = 'fake'): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-kube-'));
    const p = path.join(dir, 'kubeconfig');
    fs.writeFileSync(p, this.kubeconfig(context));
    return p;
  }

  get resourceVersion(): string { return String(this.rv); }

  // ---- state changes (what a controller or kubectl would do) ----

  apply(obj: Obj): Obj {
    const c = this.collectionFor(obj.kind);
    const k = objKey(obj);
    const prev = c.objects.get(k);
    const stored: Obj = structuredClone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    stored.metadata.uid ??= prev?.metadata.uid ?? `uid-${this.rv}`;
    c.objects.set(k, stored);
    this.record({ rv: this.rv, type: prev ? 'MODIFIED' : 'ADDED', object: stored }, c.prefix);
    return stored;
  }

  remove(kind: string, namespace: string | undefined, name: string): boolean {
    const c = this.collectionFor(kind);
    const k = `${namespace ?? ''}/${name}`;
    const prev = c.objects.get(k);
    if (!prev) return false;
    c.objects.delete(k);
    const tomb: Obj = structuredClone(prev);
    tomb.metadata.resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, type: 'DELETED', object: tomb }, c.prefix);
    return true;
  }

  get(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    return this.collectionFor(kind).objects.get(`${namespace ?? ''}/${name}`);
  }

  objects(kind: string): Obj[] { return [...this.collectionFor(kind).objects.values()]; }

  /** Forget history: every watcher that resumes from before now gets 410 Gone. */
  compact(): void { this.history = []; this.floor = this.rv; }

  /** Close every watch connection abruptly (a load balancer or apiserver restart). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.socket?.destroy();
    this.watchers.clear();
  }

  /** Send a BOOKMARK with the current resourceVersion to watchers that asked for them. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const kind = Object.entries(PLURALS).find(([, p]) => p.prefix === w.collection)?.[0] ?? '';
      this.send(w, { type: 'BOOKMARK', object: { kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  expireContinueTokens(): void { this.snapshots.clear(); }

  watcherCount(prefix?: string): number { return [...this.watchers].filter((w) => !prefix || w.collection === prefix).length; }

  async stop(): Promise<void> {
    this.dropWatches();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- wire protocol ----

  private collectionFor(kind: string): Collection {
    const p = PLURALS[kind];
    if (!p) throw new Error(`fake apiserver: unknown kind ${kind}`);
    let c = this.collections.get(p.prefix);
    if (!c) this.collections.set(p.prefix, (c = { prefix: p.prefix, namespaced: p.namespaced, objects: new Map() }));
    return c;
  }

  private record(ev: WatchEvent, prefix: string): void {
    this.history.push(ev);
    const limit = this.opts.historyLimit ?? 100_000;
    if (this.history.length > limit) {
      const dropped = this.history.splice(0, this.history.length - limit);
      this.floor = dropped[dropped.length - 1]!.rv;
    }
    for (const w of this.watchers) {
      if (w.collection === prefix && this.matches(w, ev.object)) this.send(w, { type: ev.type, object: ev.object });
    }
  }

  private matches(w: { namespace?: string; selector: Array<[string, string]> }, o: Obj): boolean {
    if (w.namespace !== undefined && o.metadata.namespace !== w.namespace) return false;
    const labels = (o.metadata.labels ?? {}) as Record<string, string>;
    return w.selector.every(([k, v]) => labels[k] === v);
  }

  private send(w: Watcher, ev: object): void {
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(JSON.stringify(ev) + '\n');
  }

  /** Splits /api/v1/namespaces/NS/pods/NAME or /apis/G/V/namespaces/NS/PLURAL/NAME. */
  private route(pathname: string): { prefix: string; namespace?: string; name?: string } | undefined {
    const parts = pathname.split('/').filter(Boolean);
    const head = parts[0] === 'api' ? 2 : parts[0] === 'apis' ? 3 : -1;
    if (head < 0 || parts.length <= head) return undefined;
    const base = parts.slice(0, head).join('/');
    let rest = parts.slice(head);
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) { namespace = rest[1]; rest = rest.slice(2); }
    const prefix = `${base}/${rest[0]}`;
    return { prefix, namespace, name: rest[1] };
  }

  private json(res: http.ServerResponse, code: number, body: object): void {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private count(k: string): void { this.requests.set(k, (this.requests.get(k) ?? 0) + 1); }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.opts.token && req.headers.authorization !== `Bearer ${this.opts.token}`) {
      this.json(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (this.unavailable) { this.json(res, 503, status(503, 'ServiceUnavailable', 'unavailable')); return; }
    const url = new URL(req.url ?? '/', 'http://x');
    const r = this.route(url.pathname);
    const c = r && this.collections.get(r.prefix);
    if (!r || !c) { this.json(res, 404, status(404, 'NotFound', `the server could not find the requested resource ${url.pathname}`)); return; }
    const selector = (url.searchParams.get('labelSelector') ?? '').split(',').filter(Boolean).map((t) => t.split('=') as [string, string]);
    if (req.method === 'GET' && r.name) {
      const o = c.objects.get(`${r.namespace ?? ''}/${r.name}`);
      this.count(`get ${r.prefix}`);
      if (!o) this.json(res, 404, status(404, 'NotFound', `${r.prefix} "${r.name}" not found`));
      else this.json(res, 200, o);
      return;
    }
    if (req.method === 'GET') {
      const w = url.searchParams.get('watch');
      if (w === 'true' || w === '1') this.watch(c, r.namespace, selector, url, res);
      else this.list(c, r.namespace, selector, url, res);
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => this.write(req.method ?? '', c, r, body, res));
  }

  private list(c: Collection, namespace: string | undefined, selector: Array<[string, string]>, url: URL, res: http.ServerResponse): void {
    this.count(`list ${c.prefix}`);
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let items: Obj[];
    let snapId: string;
    let offset = 0;
    let listRv: string;
    if (cont) {
      const [id, off, rv] = Buffer.from(cont, 'base64url').toString().split(':');
      const snap = this.snapshots.get(id!);
      if (!snap) {
        this.json(res, 410, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'));
        return;
      }
      items = snap; snapId = id!; offset = Number(off); listRv = rv!;
    } else {
      items = [...c.objects.values()].filter((o) => this.matches({ namespace, selector }, o))
        .sort((a, b) => (objKey(a) < objKey(b) ? -1 : 1));
      snapId = String(++this.snapshotSeq);
      listRv = String(this.rv);
    }
    const page = limit > 0 ? items.slice(offset, offset + limit) : items.slice(offset);
    const more = limit > 0 && offset + limit < items.length;
    if (more) this.snapshots.set(snapId, items); else this.snapshots.delete(snapId);
    const kind = Object.entries(PLURALS).find(([, p]) => p.prefix === c.prefix)?.[0] ?? '';
    this.json(res, 200, {
      kind: `${kind}List`, apiVersion: page[0]?.apiVersion ?? 'v1',
      metadata: { resourceVersion: listRv, ...(more ? { continue: Buffer.from(`${snapId}:${offset + limit}:${listRv}`).toString('base64url'), remainingItemCount: items.length - offset - limit } : {}) },
      items: page,
    });
  }

  private watch(c: Collection, namespace: string | undefined, selector: Array<[string, string]>, url: URL, res: http.ServerResponse): void {
    this.count(`watch ${c.prefix}`);
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const from = Number(rvParam || 0);
    if (rvParam !== '' && rvParam !== '0' && from < this.floor) {
      const st = status(410, 'Expired', `too old resource version: ${from} (${this.floor})`);
      if (this.opts.gone410AsHttp) { this.json(res, 410, st); return; }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.end(JSON.stringify({ type: 'ERROR', object: st }) + '\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { collection: c.prefix, namespace, selector, res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    if (rvParam === '' || rvParam === '0') {
      for (const o of c.objects.values()) if (this.matches(w, o)) this.send(w, { type: 'ADDED', object: o });
    } else {
      for (const ev of this.history) {
        if (ev.rv > from && this.prefixOf(ev.object.kind) === c.prefix && this.matches(w, ev.object)) this.send(w, { type: ev.type, object: ev.object });
      }
    }
    if (this.closeWatchesAtOnce) { res.end(); return; }
    this.watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => { this.watchers.delete(w); if (timer) clearTimeout(timer); });
  }

  private prefixOf(kind: string): string | undefined { return PLURALS[kind]?.prefix; }

  private write(method: string, c: Collection, r: { namespace?: string; name?: string }, body: string, res: http.ServerResponse): void {
    this.count(`${method} ${c.prefix}`);
    const kind = Object.entries(PLURALS).find(([, p]) => p.prefix === c.prefix)?.[0] ?? '';
    if (method === 'DELETE') {
      if (!r.name || !this.remove(kind, r.namespace, r.name)) { this.json(res, 404, status(404, 'NotFound', 'not found')); return; }
      this.json(res, 200, status(200, '', 'deleted'));
      return;
    }
    let obj: Obj;
    try { obj = JSON.parse(body) as Obj; } catch { this.json(res, 400, status(400, 'BadRequest', 'invalid JSON')); return; }
    obj.metadata ??= { name: r.name ?? '' };
    if (c.namespaced) obj.metadata.namespace = r.namespace ?? obj.metadata.namespace;
    obj.kind ??= kind;
    const prev = c.objects.get(objKey(obj));
    if (method === 'POST') {
      if (prev) { this.json(res, 409, status(409, 'AlreadyExists', `${kind} "${obj.metadata.name}" already exists`)); return; }
      this.json(res, 201, this.apply(obj));
      return;
    }
    if (method === 'PUT') {
      if (!prev) { this.json(res, 404, status(404, 'NotFound', 'not found')); return; }
      if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== prev.metadata.resourceVersion) {
        this.json(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${kind} "${obj.metadata.name}": the object has been modified`));
        return;
      }
      this.json(res, 200, this.apply(obj));
      return;
    }
    this.json(res, 405, status(405, 'MethodNotAllowed', method));
  }
}

// ---- object builders for tests and the bench ----

export function svc(name: string, ns: string, ports: Array<{ name: string; port: number; targetPort?: number | string }>, extra: Record<string, any> = {}): Obj {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { clusterIP: '10.0.0.1', selector: { app: name }, ports, ...extra } };
}

export function pod(name: string, ns: string, ip: string, labels: Record<string, string>, opts: { node?: string; ready?: boolean; sa?: string } = {}): Obj {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: ns, labels, annotations: { 'kubectl.kubernetes.io/restartedAt': 'x', 'prometheus.io/scrape': 'true' } },
    spec: {
      nodeName: opts.node, serviceAccountName: opts.sa ?? 'default',
      containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: 8080 }], env: [{ name: 'A', value: 'b'.repeat(200) }] }],
    },
    status: {
      phase: 'Running', podIP: ip, hostIP: '192.168.0.1',
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }, { type: 'PodScheduled', status: 'True' }],
      containerStatuses: [{ name: 'app', ready: opts.ready !== false, restartCount: 0, image: 'app:1' }],
    },
  };
}

export function slice(name: string, ns: string, service: string, portName: string, port: number,
  endpoints: Array<{ ip: string; pod?: string; ready?: boolean; serving?: boolean; terminating?: boolean; zone?: string; node?: string }>): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    ports: [{ name: portName, port, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod, namespace: ns } } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
      ...(e.node ? { nodeName: e.node } : {}),
    })),
  };
}

export function node(name: string, labels: Record<string, string>): Obj {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
}

export function namespace(name: string, labels: Record<string, string> = {}): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}
