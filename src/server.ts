/**
 * Wires the rooms together: config sources → ConfigStore → Debouncer → PushEngine (PushContext, worker pool,
 * resource cache) → ADS streams; plus the monitoring port.
 */
import * as grpc from '@grpc/grpc-js';
import os from 'node:os';
import { ConfigStore, keyString, type ConfigEvent } from './config/store.js';
import { ENDPOINT_KINDS } from './config/kinds.js';
import { FileSource } from './sources/file/file-source.js';
import { Debouncer, type PushRequest } from './push/debounce.js';
import { listenGrpc, type GrpcListener } from './xds/listen.js';
import { PushEngine } from './push/push-engine.js';
import { WORKER_IDLE_MS, createGenerationPool, defaultWorkerCount, type GenerationPool } from './push/generation-pool.js';
import { AdsServer } from './xds/ads-server.js';
import { MonitoringServer } from './monitoring/http-server.js';
import { PilotMetrics, serverMetricsSource } from './monitoring/metrics.js';
import { registerDebugEndpoints } from './monitoring/debug-endpoints.js';
import { registerCsds } from './xds/csds.js';
import { handleDebugRequest } from './xds/debug-generator.js';
import { createLogger, type Logger } from './log/logger.js';
import { DEFAULT_CLUSTER_ID, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_ROOT_NAMESPACE, DOMAIN_SUFFIX } from './model/constants.js';
import { envoyRoot } from './proto/envoy-protos.js';
// Kubernetes modules are loaded only when a cluster is configured (start()): @kubernetes/client-node costs ~0.5 s
// to load and 30–45 MB of the server's RSS (measured), which a control plane reading files should not pay.
import type { KubeSource, KubeSourceOptions } from './sources/kube/multicluster.js';
import type { LeaderElector } from './sources/kube/leader-election.js';
import { SecurePort, defaultCaDir } from './security/secure-port.js';
import { SdsServer } from './security/sds.js';
import { FileSecretSource } from './security/credentials.js';
import { DEFAULT_WORKLOAD_CERT_TTL_MS, MAX_WORKLOAD_CERT_TTL_MS } from './security/ca.js';
import { describeMeshErrors, meshSettings, parseMeshConfig } from './model/mesh-config.js';
import { meshDigest, type MeshSettings } from './model/push-context.js';
import { MeshConfigFile } from './sources/file/mesh-config-file.js';
import { customAuthzProblems } from '../workers/networking/security/authz-builder.js';
import type { KubeSecretCaStore } from './security/ca-store-kube.js';
import { RootRotator } from './security/root-rotator.js';

export interface ServerOptions {
  configDirs: string[];
  xdsPort: number;
  monitoringPort: number;
  /** Address to bind; istiod binds all interfaces for xDS. */
  host: string;
  monitoringHost: string;
  workers: number;
  /** A worker thread stops after this long without a task (threads start on demand). */
  workerIdleMs: number;
  debounceAfterMs: number;
  debounceMaxMs: number;
  enableEdsDebounce: boolean;
  pushThrottle: number;
  logLevel: string;
  clusterId: string;
  domainSuffix: string;
  rootNamespace: string;
  trustDomain: string;
  cache: boolean;
  /** Share one computation among proxies of the same scope (off only for measurement). */
  share: boolean;
  /** Full pushes only to proxies their changes can affect (off only for measurement). */
  dependencyFilter?: boolean;
  /** New xDS streams admitted per second (PILOT_MAX_REQUESTS_PER_SECOND); 0 = unlimited. */
  maxRequestsPerSecond: number;
  /** How long a push waits for a proxy's ACK before its lane moves on (pacing). */
  pushAckTimeoutMs: number;
  /** Time spent before the xDS port opens generating what each namespace's sidecars share (PushEngine.warmUp); 0 = none. */
  warmupBudgetMs: number;
  /** Generation batches of at most this many resources run on the main thread (default 4; 0 = always the pool). */
  inlineMax?: number;
  /** TLS port for ADS + SDS + the CA (istiod's 15012); -1 turns it off. `xdsPort` -1 turns off plaintext xDS. */
  secureXdsPort: number;
  /** cacerts (plugged-in) or where the self-signed root is kept. */
  caDir: string;
  /** `TOKEN NAMESPACE SERVICEACCOUNT` lines accepted as bearer tokens by the CA (file mode). */
  caTokenFile?: string;
  /** Directories of Secret objects for gateway credentialName (file mode); never part of the config store. */
  secretDirs?: string[];
  workloadCertTtlMs: number;
  maxWorkloadCertTtlMs: number;
  /** Self-signed root: lifetime and automatic rotation (istiod's CITADEL_SELF_SIGNED_* env; see root-rotator.ts). */
  selfSignedRootTtlMs?: number;
  rootCertCheckIntervalMs?: number;
  rootCertGracePeriodPercentile?: number;
  rootCertRotatorJitter?: boolean;
  /** Kubernetes clusters (--kubeconfig / KUBECONFIG / in-cluster): the first is the config cluster. */
  kube?: Pick<KubeSourceOptions, 'kubeconfigs' | 'remoteClusterTimeoutMs' | 'reflector'> & { systemNamespace?: string; leaderElection?: boolean };
  logger?: Logger;
  /** istiod's --meshConfig: a MeshConfig YAML file, read at start and watched. Else (Kubernetes) the `istio` ConfigMap. */
  meshConfigFile?: string;
  /** True when --trust-domain was given: it then wins over the mesh config's trustDomain. */
  trustDomainFlag?: boolean;
}

/** istiod's automatic throttle: min(15 + 5 × cores, 100). */
export function autoThrottle(): number {
  return Math.min(15 + 5 * os.availableParallelism(), 100);
}

export function defaultServerOptions(): ServerOptions {
  return {
    configDirs: [],
    xdsPort: 15010,
    monitoringPort: 15014,
    host: '0.0.0.0',
    monitoringHost: '127.0.0.1',
    workers: defaultWorkerCount(),
    workerIdleMs: WORKER_IDLE_MS,
    debounceAfterMs: 100,
    debounceMaxMs: 10_000,
    enableEdsDebounce: true,
    pushThrottle: autoThrottle(),
    logLevel: 'info',
    clusterId: DEFAULT_CLUSTER_ID,
    domainSuffix: DOMAIN_SUFFIX,
    rootNamespace: DEFAULT_ROOT_NAMESPACE,
    trustDomain: 'cluster.local',
    cache: true,
    share: true,
    maxRequestsPerSecond: autoThrottle(),
    pushAckTimeoutMs: 2000,
    warmupBudgetMs: 5000,
    secureXdsPort: 15012,
    caDir: defaultCaDir(),
    workloadCertTtlMs: DEFAULT_WORKLOAD_CERT_TTL_MS,
    maxWorkloadCertTtlMs: MAX_WORKLOAD_CERT_TTL_MS,
  };
}

export class MeshpilotServer {
  readonly log: Logger;
  /** What the start-up warm-up did (PushEngine.warmUp), when it ran. */
  warmup: Awaited<ReturnType<PushEngine['warmUp']>> | undefined;
  readonly store = new ConfigStore();
  readonly engine: PushEngine;
  readonly ads: AdsServer;
  private readonly pool: GenerationPool;
  private readonly debouncer: Debouncer;
  private readonly grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.max_send_message_length': -1,
    // grpc-js's channelz stays on: with it off (grpc.enable_channelz 0; ~150 ms less server CPU in a 5,000-proxy
    // storm) a stopped server left client HTTP/2 sessions open until their idle timeout (a grpc-xds test file took
    // 300 s to exit instead of 2 s).
  });
  private readonly monitoring = new MonitoringServer();
  /** Prometheus metrics of this instance (its own registry). */
  readonly metrics: PilotMetrics = new PilotMetrics(serverMetricsSource(this));
  private readonly sources: FileSource[] = [];
  /** Kubernetes source (every cluster; created by start()) and the Lease-based leader elector for single-writer duties. */
  kube?: KubeSource;
  leader?: LeaderElector;
  private stopping = false;
  private ready = false;
  xdsPort = 0;
  private xdsListener?: GrpcListener;
  secureXdsPort = 0;
  /** The CA, SDS and the TLS xDS port; undefined when --secure-xds-port is -1. */
  secure?: SecurePort;
  sds?: SdsServer;
  /** With a Kubernetes config cluster: the self-signed root in the istio-ca-secret Secret (leader writes). */
  caStore?: KubeSecretCaStore;
  /** Rotates the self-signed root before it expires (leader only in Kubernetes). */
  rootRotator?: RootRotator;
  monitoringPort = 0;
  /** Documents rejected by validation since start. */
  configRejected = 0;
  /** Mesh configs rejected by validation since start (the last good one stayed in force). */
  meshConfigRejected = 0;
  /** Where the mesh config in force came from, and the last rejection (GET /debug/mesh). */
  private meshSource = 'defaults';
  private meshError: string | undefined;
  private meshFile?: MeshConfigFile;
  /** Flags and built-in defaults: what a mesh config is applied to. */
  private baseMesh!: MeshSettings;

  constructor(readonly opts: ServerOptions) {
    this.log = opts.logger ?? createLogger(opts.logLevel);
    this.pool = this.metrics.instrumentPool(createGenerationPool(opts.workers, opts.workerIdleMs, (err) => this.log.error({ err: err.message }, 'generation worker failed outside a task')));
    this.engine = new PushEngine({
      store: this.store,
      pool: this.pool,
      mesh: {
        rootNamespace: opts.rootNamespace, domainSuffix: opts.domainSuffix,
        connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS, trustDomain: opts.trustDomain,
      },
      clusterId: opts.clusterId,
      log: this.log,
      pushConcurrency: opts.pushThrottle,
      inlineMax: opts.inlineMax,
      cache: opts.cache,
      share: opts.share,
      dependencyFilter: opts.dependencyFilter,
      metrics: this.metrics,
    });
    this.baseMesh = this.engine.mesh;
    this.ads = new AdsServer({
      engine: this.engine, log: this.log, maxRequestsPerSecond: opts.maxRequestsPerSecond, ackTimeoutMs: opts.pushAckTimeoutMs,
      metrics: this.metrics, debugGenerator: (con, req, write) => handleDebugRequest(this, con, req, write),
    });
    this.debouncer = new Debouncer(
      { afterMs: opts.debounceAfterMs, maxMs: opts.debounceMaxMs, enableEdsDebounce: opts.enableEdsDebounce },
      (req) => { this.metrics.pushRequested(req); return this.engine.push(req).then(() => this.reportPolicyProblems()); },
    );
  }

  private onConfigEvent(ev: ConfigEvent): void {
    this.metrics.inboundUpdate(ev);
    const req: PushRequest = {
      full: !ENDPOINT_KINDS.has(ev.key.kind),
      configsUpdated: new Set([keyString(ev.key)]),
      reasons: new Map([[ev.key.kind, 1]]),
      start: ev.observedAt ?? performance.now(),
      events: 1,
    };
    this.debouncer.enqueue(req);
  }

  async start(): Promise<void> {
    envoyRoot();
    const kubeOpts = this.opts.kube;
    if (kubeOpts && kubeOpts.kubeconfigs.length > 0) {
      const { KubeSource } = await import('./sources/kube/multicluster.js');
      this.kube = new KubeSource({
        ...kubeOpts, clusterId: this.opts.clusterId, store: this.store, log: this.log,
        systemNamespace: kubeOpts.systemNamespace ?? 'istio-system',
        onInvalid: (err) => { this.configRejected++; this.log.error({ cluster: err.clusterId, kind: err.kind, name: err.objectName, field: err.field, code: err.code }, err.message); },
      });
      this.engine.attachClusters(this.kube);
    }
    for (const dir of this.opts.configDirs) {
      const src = new FileSource({
        dirs: [dir],
        store: this.store,
        onError: (err) => {
          this.configRejected++;
          this.log.error({ file: err.file, doc: err.docIndex, kind: err.kind, name: err.objectName, field: err.field, code: err.code }, err.message);
        },
      });
      this.sources.push(src);
    }
    if (this.opts.meshConfigFile) {
      // As istiod: an unreadable or invalid mesh config file at start is a start error; later ones keep the last good.
      this.meshFile = new MeshConfigFile(this.opts.meshConfigFile, (text) => this.applyMeshConfig(text, this.opts.meshConfigFile!));
      if (!this.applyMeshConfig(this.meshFile.readNow(), this.opts.meshConfigFile, false)) {
        throw new Error(`mesh config ${this.opts.meshConfigFile}: ${this.meshError}`);
      }
      this.meshFile.watch();
    }
    for (const s of this.sources) await s.start();
    this.engine.rebuild();
    this.store.on('change', (ev: ConfigEvent) => this.onConfigEvent(ev));
    if (this.kube) {
      this.kube.on('change', (ev: ConfigEvent) => this.onConfigEvent(ev));
      if (!this.meshFile) {
        const ns = this.opts.kube?.systemNamespace ?? 'istio-system';
        // A deleted ConfigMap (or key) means istiod's default mesh again.
        this.kube.on('meshConfig', (text: string | undefined) => this.applyMeshConfig(text ?? '', `configmap ${ns}/istio`));
      }
      this.kube.start();
      const config = this.kube.cluster(this.opts.clusterId);
      if (config && this.opts.kube?.leaderElection !== false) {
        const { LeaderElector } = await import('./sources/kube/leader-election.js');
        this.leader = new LeaderElector({ client: config.client, namespace: this.opts.kube?.systemNamespace ?? 'istio-system', name: 'meshpilot-leader', log: this.log });
        this.leader.start();
      }
      this.monitoring.route('/debug/clusterz', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...this.kube!.status(), leader: this.leader?.isLeader() ?? false }, null, 1));
      });
    }

    this.monitoring.route('/ready', (_req, res) => {
      const ready = this.isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    });
    this.monitoring.route('/debug/mesh', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.meshStatus(), null, 1));
    });
    registerDebugEndpoints(this.monitoring, this);
    this.monitoringPort = await this.monitoring.listen(this.opts.monitoringPort, this.opts.monitoringHost);
    if (this.kube) {
      // As istiod: no xDS until the informers have synced, or reconnecting proxies would get a config without the
      // cluster's services. The monitoring port is up meanwhile (/ready 503, /debug/clusterz).
      await this.kube.whenReady();
      if (this.stopping) return;
      this.engine.rebuild();
    }

    // Proxies connect as soon as the port is open: a pool whose threads must be loaded by then waits here (ours
    // start on demand, src/push/generation-pool.ts).
    await this.pool.ready?.();
    if (this.stopping) return;
    if (this.opts.warmupBudgetMs > 0) {
      // Sidecars of the secure port (with a certificate: SDS-backed TLS) and of the plaintext port have different
      // configs; warm the kinds the open ports will see.
      const sds = [...(this.opts.secureXdsPort >= 0 ? [true] : []), ...(this.opts.xdsPort >= 0 ? [false] : [])];
      const w = this.warmup = await this.engine.warmUp(this.opts.warmupBudgetMs, sds);
      this.log.info({ ...w, ms: Math.round(w.ms) }, 'warm-up: shared config generated before the xDS port opens');
      if (this.stopping) return;
    }
    if (this.opts.xdsPort >= 0) {
      this.ads.register(this.grpcServer);
      registerCsds(this.grpcServer, this);
      this.xdsListener = await listenGrpc(this.grpcServer, this.opts.host, this.opts.xdsPort, grpc.ServerCredentials.createInsecure());
      this.xdsPort = this.xdsListener.port;
    }
    // The CA, SDS and TokenReview take the trust domain at start: the mesh config's, unless --trust-domain was given.
    this.opts.trustDomain = this.engine.mesh.trustDomain;
    if (this.opts.secureXdsPort >= 0) {
      const o = this.opts;
      const configCluster = this.kube?.cluster(o.clusterId);
      if (configCluster) {
        const { KubeSecretCaStore } = await import('./security/ca-store-kube.js');
        this.caStore = new KubeSecretCaStore({ client: configCluster.client, namespace: o.kube?.systemNamespace ?? 'istio-system', leader: this.leader, log: this.log });
      }
      this.secure = new SecurePort({
        port: o.secureXdsPort, host: o.host, caDir: o.caDir, caStore: this.caStore, caTokenFile: o.caTokenFile, trustDomain: o.trustDomain,
        workloadCertTtlMs: o.workloadCertTtlMs, maxWorkloadCertTtlMs: o.maxWorkloadCertTtlMs, rootTtlMs: o.selfSignedRootTtlMs,
        // With a Kubernetes config cluster, service-account tokens are checked with TokenReview (as istiod).
        authenticators: configCluster
          ? [new (await import('./security/authenticate-kube.js')).KubeJwtAuthenticator(configCluster.client, o.trustDomain)] : [],
      }, this.log);
      await this.secure.init();
      this.rootRotator = new RootRotator({
        ca: this.secure.ca, checkIntervalMs: o.rootCertCheckIntervalMs, gracePeriodPercentile: o.rootCertGracePeriodPercentile,
        jitter: o.rootCertRotatorJitter, log: this.log,
      });
      if (!this.stopping) this.rootRotator.start();
      const sources = o.secretDirs?.length ? [new FileSecretSource(o.secretDirs)] : [];
      this.sds = new SdsServer({ ca: this.secure.ca, trustDomain: o.trustDomain, log: this.log, sources });
      this.ads.register(this.sds.tap(this.secure.server) as grpc.Server);
      registerCsds(this.secure.server, this);
      this.secureXdsPort = await this.secure.listen();
    }
    this.ready = true;
    this.reportPolicyProblems();
    const ctx = this.engine.pushContext;
    this.log.info({
      xdsPort: this.xdsPort, secureXdsPort: this.secureXdsPort, monitoringPort: this.monitoringPort, workers: this.pool.threads,
      services: ctx.services.length, configs: this.store.size(), rejected: this.configRejected,
    }, 'meshpilot ready');
  }

  /**
   * Validate and apply a mesh config (file or ConfigMap text). A bad one is logged naming the field and counted; the
   * last good one stays. A change is a full push to every proxy (istiod's GlobalUpdate). Returns false when rejected.
   */
  applyMeshConfig(text: string | undefined, source: string, push = true): boolean {
    const parsed = text === undefined ? { ok: false as const, errors: [{ path: '', message: 'the file is gone' }] } : parseMeshConfig(text);
    if (!parsed.ok) {
      this.meshConfigRejected++;
      this.configRejected++;
      this.meshError = describeMeshErrors(parsed.errors);
      this.log.error({ source, field: parsed.errors[0]?.path, errors: parsed.errors }, `mesh config ${source}: ${this.meshError} (the last good mesh config stays in force)`);
      return false;
    }
    this.meshError = undefined;
    this.meshSource = source;
    if (parsed.ignored.length) this.log.warn({ source, fields: parsed.ignored }, 'mesh config: fields meshpilot does not implement are ignored');
    const next = meshSettings(this.baseMesh, parsed.config, this.opts.trustDomainFlag ? { trustDomain: this.opts.trustDomain } : {});
    if (meshDigest(next) === meshDigest(this.engine.mesh)) return true;
    this.engine.setMesh(next);
    this.log.info({ source, mesh: next }, 'mesh config applied');
    if (push) {
      this.debouncer.enqueue({
        full: true, configsUpdated: new Set(['MeshConfig//mesh']), reasons: new Map([['MeshConfig', 1]]), start: performance.now(), events: 1,
      });
    }
    return true;
  }

  private policyProblems = new Set<string>();
  private policyCheckedCtx: unknown;

  /**
   * Policies that validate but cannot be enforced as written (a CUSTOM AuthorizationPolicy naming a provider the mesh
   * config lacks or cannot use: istiod then denies what it matches): logged once each, when a push brings them.
   */
  private reportPolicyProblems(): void {
    const ctx = this.engine.pushContext;
    if (!ctx || ctx === this.policyCheckedCtx) return;
    this.policyCheckedCtx = ctx;
    const now = new Set(customAuthzProblems(ctx));
    for (const p of now) if (!this.policyProblems.has(p)) this.log.warn({ code: 'CUSTOM_PROVIDER' }, p);
    this.policyProblems = now;
  }

  /** The mesh settings in force, where they came from and the last rejection (istiod's /debug/mesh). */
  meshStatus(): { source: string; mesh: MeshSettings; rejected: number; lastError?: string } {
    return { source: this.meshSource, mesh: this.engine.mesh, rejected: this.meshConfigRejected, ...(this.meshError ? { lastError: this.meshError } : {}) };
  }

  /** Files loaded, ports bound, and every Kubernetes informer synced (remote clusters: or timed out). */
  isReady(): boolean { return this.ready && (this.kube?.ready() ?? true); }

  /** True when no change is waiting to be pushed (tests use it to wait for convergence). */
  idle(): boolean { return !this.debouncer.busy(); }

  async stop(): Promise<void> {
    this.stopping = true;
    this.ready = false;
    this.debouncer.close();
    for (const s of this.sources) s.stop();
    this.meshFile?.stop();
    this.rootRotator?.stop();
    this.caStore?.close();
    await this.leader?.stop();
    this.kube?.stop();
    this.xdsListener?.close();
    this.grpcServer.forceShutdown();
    this.sds?.close();
    this.secure?.stop();
    await this.monitoring.close();
    await this.pool.close();
  }
}
