/**
 * Prometheus metrics with istiod's names, types, labels and buckets, so Istio's Grafana dashboards work unchanged.
 * Sources: istio pilot/pkg/xds/monitoring.go, pkg/xds/monitoring.go, pilot/pkg/model/push_context.go. istiod exports
 * through OpenTelemetry with WithoutUnits() and WithoutCounterSuffixes(), so names carry no `_total`/unit suffix.
 *
 * One Registry per server (tests run several servers in one process). Gauges that mirror state the server already
 * keeps (connections, services, cache size) are read in collect() callbacks, so the hot path only touches
 * counters and histograms through the XdsMetrics hooks below.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../proto/type-urls.js';
import type { ConfigEvent } from '../config/store.js';
import { FastCounter, FastHistogram } from './fast-metrics.js';
import type { PushRequest } from '../push/debounce.js';
import type { GenerationPool } from '../push/generation-pool.js';

/** istiod's v3.GetMetricType: the `type` label of xDS metrics. */
export function metricType(typeUrl: string): string {
  switch (typeUrl) {
    case CLUSTER_TYPE: return 'cds';
    case ENDPOINT_TYPE: return 'eds';
    case LISTENER_TYPE: return 'lds';
    case ROUTE_TYPE: return 'rds';
    case SECRET_TYPE: return 'sds';
    default: return typeUrl;
  }
}

const DELAY_BUCKETS = [0.01, 0.1, 1, 3, 5, 10, 20, 30];
const CONVERGENCE_BUCKETS = [0.1, 0.5, 1, 3, 5, 10, 20, 30];
const SIZE_BUCKETS = [1, 10000, 1000000, 4000000, 10000000, 40000000];
const PUSHCONTEXT_BUCKETS = [0.01, 0.1, 0.5, 1, 3, 5];
const TASK_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

/** Kubernetes/Istio kind → istiod's TriggerReason (pilot/pkg/model/push_context.go). */
export function triggerReason(kind: string): string {
  switch (kind) {
    case 'Endpoints': case 'EndpointSlice': case 'Pod': case 'WorkloadEntry': return 'endpoint';
    case 'Service': case 'ServiceEntry': return 'service';
    case 'Namespace': return 'namespace';
    default: return 'config';
  }
}

/** istiod's pilot_inbound_updates types: config, eds, svc, svcdelete. */
export function inboundUpdateType(ev: ConfigEvent): string {
  const t = triggerReason(ev.key.kind);
  if (t === 'endpoint') return 'eds';
  if (t === 'service') return ev.op === 'delete' ? 'svcdelete' : 'svc';
  return 'config';
}

/** What the push engine, ADS streams and debouncer report. All durations in milliseconds. */
export interface XdsMetrics {
  pushContextInit(ms: number): void;
  /** A proxy waited this long between the push starting and its turn (pilot_proxy_queue_time). */
  proxyDequeued(ms: number): void;
  /** Computing and handing over one type for one proxy during a push (pilot_xds_push_time). */
  pushTypeDone(typeUrl: string, ms: number): void;
  /** A proxy got everything for a push; `ms` since the first config event of the push (convergence). */
  proxyConverged(ms: number): void;
  /** Resource cache lookups for one computed response. */
  cacheLookup(typeUrl: string, hits: number, misses: number): void;
  /** A DiscoveryResponse (or delta response) of this size is being written to a stream. */
  responseSent(typeUrl: string, bytes: number): void;
  /** Handing one framed response to the stream took this long. */
  sendDone(ms: number): void;
  /** A request was classified: `nack` counts a reject, `stale` an expired nonce. */
  requestHandled(typeUrl: string, verdict: string, proxyId: string, errCode?: number): void;
  writeTimeout(): void;
  internalError(): void;
}

/** Read-only view of the server that collect() callbacks use. */
export interface MetricsSource {
  connections(): Iterable<{ proxy: { istioVersion: string } }>;
  services(): number;
  virtualServices(): number;
  cache(): { size: number; bytes: number };
  configRejected(): number;
  generationErrors(): number;
  /** The CA's counts, when this server runs one. */
  csr(): { received: number; issued: number } | undefined;
}

/** A counter that mirrors a monotonic count kept elsewhere: each scrape adds what the count grew by. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  let seen = 0;
  return new Counter({
    registers: [registry], name, help,
    collect() {
      const n = read();
      if (n > seen) { this.inc(n - seen); seen = n; }
    },
  });
}

export class PilotMetrics implements XdsMetrics {
  readonly registry = new Registry();
  private readonly xdsPushes: FastCounter;
  private readonly pushTime: Histogram<'type'>;
  private readonly convergence: Histogram;
  private readonly queueTime: Histogram;
  private readonly debounceTime: Histogram;
  private readonly pushContextInitTime: Histogram;
  private readonly pushTriggers: Counter<'type'>;
  private readonly inboundUpdates: Counter<'type'>;
  private readonly configSize: FastHistogram;
  private readonly sendTime: FastHistogram;
  private readonly totalRejects: Counter<'type'>;
  private readonly rejectsByType: Map<string, Gauge<'node' | 'err'>>;
  private readonly expiredNonces: Counter<'type'>;
  private readonly writeTimeouts: Counter;
  private readonly internalErrors: Counter;
  private readonly cacheHits: Counter<'type'>;
  private readonly cacheMisses: Counter<'type'>;
  private readonly taskTime: Histogram<'type'>;
  /** Worker pool accounting for utilisation: busy milliseconds integrated over in-flight tasks. */
  private readonly pool = { threads: 1, inFlight: 0, busyMs: 0, lastChange: performance.now(), since: performance.now() };
  private readonly readers = new Map<string, { at: number; busy: number }>();
  private poolInline = false;
  /** The pool being timed (for its spare-cores reading). */
  private instrumented?: GenerationPool;
  /** Rolling push rate for the status page. */
  private readonly sentTimes: number[] = [];

  constructor(src: MetricsSource, opts: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    const reg = { registers: [r] };
    new Gauge({
      ...reg, name: 'pilot_xds', help: 'Number of endpoints connected to this pilot using XDS.', labelNames: ['version'],
      collect() {
        this.reset();
        const byVersion = new Map<string, number>();
        for (const c of src.connections()) byVersion.set(c.proxy.istioVersion, (byVersion.get(c.proxy.istioVersion) ?? 0) + 1);
        for (const [version, n] of byVersion) this.set({ version }, n);
      },
    });
    new Gauge({ ...reg, name: 'pilot_services', help: 'Total services known to pilot.', collect() { this.set(src.services()); } });
    new Gauge({ ...reg, name: 'pilot_virt_services', help: 'Total virtual services known to pilot.', collect() { this.set(src.virtualServices()); } });
    this.xdsPushes = new FastCounter('pilot_xds_pushes', 'Pilot build and send errors for lds, rds, cds and eds.', r, 'type');
    this.pushTime = new Histogram({ ...reg, name: 'pilot_xds_push_time', help: 'Total time in seconds Pilot takes to push lds, rds, cds and eds.', labelNames: ['type'], buckets: DELAY_BUCKETS });
    this.convergence = new Histogram({ ...reg, name: 'pilot_proxy_convergence_time', help: 'Delay in seconds between config change and a proxy receiving all required configuration.', buckets: CONVERGENCE_BUCKETS });
    this.queueTime = new Histogram({ ...reg, name: 'pilot_proxy_queue_time', help: 'Time in seconds, a proxy is in the push queue before being dequeued.', buckets: CONVERGENCE_BUCKETS });
    this.debounceTime = new Histogram({ ...reg, name: 'pilot_debounce_time', help: 'Delay in seconds between the first config enters debouncing and the merged push request is pushed into the push queue.', buckets: DELAY_BUCKETS });
    this.pushContextInitTime = new Histogram({ ...reg, name: 'pilot_pushcontext_init_seconds', help: 'Total time in seconds Pilot takes to init pushContext.', buckets: PUSHCONTEXT_BUCKETS });
    this.pushTriggers = new Counter({ ...reg, name: 'pilot_push_triggers', help: 'Total number of times a push was triggered, labeled by reason for the push.', labelNames: ['type'] });
    this.inboundUpdates = new Counter({ ...reg, name: 'pilot_inbound_updates', help: 'Total number of updates received by pilot.', labelNames: ['type'] });
    this.configSize = new FastHistogram('pilot_xds_config_size_bytes', 'Distribution of configuration sizes pushed to clients', SIZE_BUCKETS, r, 'type');
    this.sendTime = new FastHistogram('pilot_xds_send_time', 'Total time in seconds Pilot takes to send generated configuration.', DELAY_BUCKETS, r);
    this.totalRejects = new Counter({ ...reg, name: 'pilot_total_xds_rejects', help: 'Total number of XDS responses from pilot rejected by proxy.', labelNames: ['type'] });
    this.rejectsByType = new Map(([['cds', 'CDS configs'], ['eds', 'EDS'], ['lds', 'LDS'], ['rds', 'RDS']] as const).map(([t, what]) => [
      t, new Gauge({ ...reg, name: `pilot_xds_${t}_reject`, help: `Pilot rejected ${what}.`, labelNames: ['node', 'err'] }),
    ]));
    this.expiredNonces = new Counter({ ...reg, name: 'pilot_xds_expired_nonce', help: 'Total number of XDS requests with an expired nonce.', labelNames: ['type'] });
    this.writeTimeouts = new Counter({ ...reg, name: 'pilot_xds_write_timeout', help: 'Pilot XDS response write timeouts.' });
    const self = this;
    // Generation errors are counted by the push engine; internalError() adds the ones counted here.
    this.internalErrors = mirroredCounter(r, 'pilot_total_xds_internal_errors', 'Total number of internal XDS errors in pilot.', () => src.generationErrors());
    mirroredCounter(r, 'citadel_server_csr_count', 'The number of CSRs received by Citadel server.', () => src.csr()?.received ?? 0);
    mirroredCounter(r, 'citadel_server_success_cert_issuance_count', 'The number of certificates issuances that have succeeded.', () => src.csr()?.issued ?? 0);
    new Gauge({ ...reg, name: 'pilot_total_rejected_configs', help: 'Total number of configs that Pilot had to reject or ignore.', collect() { this.set(src.configRejected()); } });

    // meshpilot's own: resource cache and generation worker pool.
    this.cacheHits = new Counter({ ...reg, name: 'meshpilot_xds_cache_hits', help: 'Resource cache hits, by xDS type.', labelNames: ['type'] });
    this.cacheMisses = new Counter({ ...reg, name: 'meshpilot_xds_cache_misses', help: 'Resource cache misses (resources generated), by xDS type.', labelNames: ['type'] });
    new Gauge({ ...reg, name: 'meshpilot_xds_cache_entries', help: 'Encoded resources held in the resource cache.', collect() { this.set(src.cache().size); } });
    new Gauge({ ...reg, name: 'meshpilot_xds_cache_bytes', help: 'Bytes of encoded resources held in the resource cache.', collect() { this.set(src.cache().bytes); } });
    this.taskTime = new Histogram({ ...reg, name: 'meshpilot_worker_task_seconds', help: 'Time a generation task took in the worker pool, queueing included, by xDS type.', labelNames: ['type'], buckets: TASK_BUCKETS });
    new Gauge({ ...reg, name: 'meshpilot_worker_queue_depth', help: 'Generation tasks waiting for a free worker.', collect() { this.set(Math.max(0, self.pool.inFlight - self.pool.threads)); } });
    new Gauge({ ...reg, name: 'meshpilot_worker_tasks_in_flight', help: 'Generation tasks submitted and not yet finished.', collect() { this.set(self.pool.inFlight); } });
    new Gauge({ ...reg, name: 'meshpilot_worker_threads', help: 'Generation worker threads running (started on demand, stopped when idle; 0 with --workers 0).', collect() { this.set(self.poolInline ? 0 : self.instrumented?.running ?? self.pool.threads); } });
    new Gauge({ ...reg, name: 'meshpilot_worker_utilization', help: 'Fraction of worker capacity busy since the previous scrape (0..1).', collect() { this.set(self.utilization('prometheus')); } });
    new Gauge({
      ...reg, name: 'meshpilot_worker_spare_cores',
      help: 'Idle cores plus what the workers already use, last sample (+Inf when unknown); below 0.5 batches are generated inline.',
      collect() { this.set(self.instrumented?.spareCores ?? Infinity); },
    });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: r });
  }

  /** Wrap a generation pool so each task is timed and counted. */
  instrumentPool(pool: GenerationPool): GenerationPool {
    this.instrumented = pool;
    this.poolInline = pool.threads === 0;
    this.pool.threads = Math.max(1, pool.threads);
    const generate = pool.generate.bind(pool);
    pool.generate = async (...args) => {
      const t0 = performance.now();
      this.poolTasks(+1, t0);
      try {
        return await generate(...args);
      } finally {
        const t1 = performance.now();
        this.poolTasks(-1, t1);
        this.taskTime.observe({ type: metricType(args[3]) }, (t1 - t0) / 1000);
      }
    };
    return pool;
  }

  private poolTasks(delta: number, now: number): void {
    const p = this.pool;
    p.busyMs += Math.min(p.inFlight, p.threads) * (now - p.lastChange);
    p.lastChange = now;
    p.inFlight += delta;
  }

  /** Busy fraction of the pool since this reader's previous call (Prometheus and the status page read apart). */
  utilization(reader = 'prometheus'): number {
    const now = performance.now();
    this.poolTasks(0, now);
    const p = this.pool;
    const last = this.readers.get(reader) ?? { at: p.since, busy: 0 };
    const wall = (now - last.at) * p.threads;
    const u = wall > 0 ? (p.busyMs - last.busy) / wall : 0;
    this.readers.set(reader, { at: now, busy: p.busyMs });
    return Math.min(1, Math.max(0, u));
  }

  /** A debounced request leaves the debouncer for the push queue. */
  pushRequested(req: PushRequest, now = performance.now()): void {
    this.debounceTime.observe(Math.max(0, now - req.start) / 1000);
    const byReason = new Map<string, number>();
    for (const [kind, n] of req.reasons) byReason.set(triggerReason(kind), (byReason.get(triggerReason(kind)) ?? 0) + n);
    for (const [type, n] of byReason) this.pushTriggers.inc({ type }, n);
  }

  inboundUpdate(ev: ConfigEvent): void { this.inboundUpdates.inc({ type: inboundUpdateType(ev) }); }

  pushContextInit(ms: number): void { this.pushContextInitTime.observe(ms / 1000); }
  proxyDequeued(ms: number): void { this.queueTime.observe(ms / 1000); }
  pushTypeDone(typeUrl: string, ms: number): void { this.pushTime.observe({ type: metricType(typeUrl) }, ms / 1000); }
  proxyConverged(ms: number): void { this.convergence.observe(ms / 1000); }

  cacheLookup(typeUrl: string, hits: number, misses: number): void {
    const type = metricType(typeUrl);
    if (hits > 0) this.cacheHits.inc({ type }, hits);
    if (misses > 0) this.cacheMisses.inc({ type }, misses);
  }

  responseSent(typeUrl: string, bytes: number): void {
    const type = metricType(typeUrl);
    this.xdsPushes.inc(type);
    this.configSize.observe(bytes, type);
    const now = Date.now();
    this.sentTimes.push(now);
    while (this.sentTimes.length > 0 && this.sentTimes[0]! < now - 60_000) this.sentTimes.shift();
  }

  sendDone(ms: number): void { this.sendTime.observe(ms / 1000); }

  requestHandled(typeUrl: string, verdict: string, proxyId: string, errCode?: number): void {
    const type = metricType(typeUrl);
    if (verdict === 'nack') {
      this.totalRejects.inc({ type });
      this.rejectsByType.get(type)?.inc({ node: proxyId, err: String(errCode ?? 0) });
    } else if (verdict === 'stale') {
      this.expiredNonces.inc({ type });
    }
  }
  writeTimeout(): void { this.writeTimeouts.inc(); }
  internalError(): void { this.internalErrors.inc(); }

  /** Responses sent per second over the last `windowS` seconds (for the status page). */
  pushRate(windowS = 10): number {
    const since = Date.now() - windowS * 1000;
    let n = 0;
    for (let i = this.sentTimes.length - 1; i >= 0 && this.sentTimes[i]! >= since; i--) n++;
    return n / windowS;
  }

  /** The convergence histogram as cumulative bucket counts (for the status page). */
  async convergenceBuckets(): Promise<Array<{ le: string; count: number }>> {
    const m = await this.convergence.get();
    return m.values.filter((v) => v.metricName === 'pilot_proxy_convergence_time_bucket')
      .map((v) => ({ le: String(v.labels.le), count: v.value }));
  }

  metrics(): Promise<string> { return this.registry.metrics(); }
  get contentType(): string { return this.registry.contentType; }
}

/** What a MeshpilotServer exposes that the collect() callbacks read (structural, to keep this module a leaf). */
export interface MetricsServerView {
  readonly engine: {
    readonly pushContext: { readonly services: readonly unknown[]; readonly data: { readonly virtualServices: readonly unknown[] } } | undefined;
    readonly cache: { stats(): { size: number; bytes: number } };
    readonly stats: { generationErrors: number };
  };
  readonly ads: { readonly connections: Iterable<{ readonly proxy: { readonly istioVersion: string }; readonly closed: boolean }> };
  readonly configRejected: number;
  readonly secure?: { readonly certService?: { readonly received: number; readonly issued: number } };
}

/** Lazy view of a server for PilotMetrics (read only at scrape time, so it may be created before the engine). */
export function serverMetricsSource(s: MetricsServerView): MetricsSource {
  return {
    connections: () => [...s.ads.connections].filter((c) => !c.closed),
    services: () => s.engine.pushContext?.services.length ?? 0,
    virtualServices: () => s.engine.pushContext?.data.virtualServices.length ?? 0,
    cache: () => s.engine.cache.stats(),
    configRejected: () => s.configRejected,
    generationErrors: () => s.engine.stats.generationErrors,
    csr: () => s.secure?.certService,
  };
}
