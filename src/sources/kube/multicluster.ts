/**
 * The Kubernetes source: the config cluster (first --kubeconfig, or in-cluster) plus remote clusters — from more
 * --kubeconfig flags, and from Secrets labelled `istio/multiCluster=true` in the system namespace of the config
 * cluster, each data key a cluster ID and its value a kubeconfig (istiod's remote secrets). Clusters come and go
 * at runtime; each has its own informers and store, so a slow or dead cluster never blocks the others.
 *
 * Readiness follows istiod: the config cluster must have synced; a remote cluster counts once synced or once
 * PILOT_REMOTE_CLUSTER_TIMEOUT has passed since it was added (its state stays visible in status()).
 */
import { EventEmitter } from 'node:events';
import type { ConfigEvent, ConfigStore } from '../../config/store.js';
import type { Logger } from '../../log/logger.js';
import type { ClusterRegistry, ClusterRegistrySet } from '../../model/registry/aggregate.js';
import { loadKubeConfig, KubeClient } from './kube-client.js';
import { KubeCluster, type ClusterStatus, type KubeObjectInvalidError } from './cluster.js';
import { Reflector, type ReflectorOptions } from './reflector.js';
import { CONFIGMAP_TYPE, MESH_CONFIGMAP_KEY, MESH_CONFIGMAP_NAME, SECRET_TYPE, type Raw } from './resources.js';
import type { KubeConfig } from '@kubernetes/client-node';

export const MULTICLUSTER_SECRET_LABEL = 'istio/multiCluster';

export type KubeconfigSource = { path: string } | { inCluster: true };

export interface KubeSourceOptions {
  /** The first is the config cluster (ID `clusterId`); others are remote clusters named by their current context. */
  kubeconfigs: KubeconfigSource[];
  clusterId: string;
  /** Main store: the config cluster's Istio objects go here. */
  store: ConfigStore;
  systemNamespace: string;
  log: Logger;
  remoteClusterTimeoutMs?: number;
  reflector?: Partial<ReflectorOptions>;
  onInvalid?: (err: KubeObjectInvalidError) => void;
}

interface Entry { cluster: KubeCluster; addedAt: number; from: string; kubeconfigKey: string }

/**
 * Emits 'change' (ConfigEvent) for every object change in any cluster, 'ready' once, and 'meshConfig' (the `mesh`
 * key of the config cluster's `istio` ConfigMap in the system namespace; undefined when the ConfigMap or key is gone)
 * whenever that text changes.
 */
export class KubeSource extends EventEmitter implements ClusterRegistrySet {
  private readonly clusters = new Map<string, Entry>();
  private secretReflector: Reflector | undefined;
  private meshReflector: Reflector | undefined;
  private meshText: string | undefined;
  private readonly secretClusters = new Map<string, Set<string>>();
  private readyFired = false;
  private readyTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: KubeSourceOptions) { super(); }

  get configClusterId(): string { return this.opts.clusterId; }

  start(): void {
    this.opts.kubeconfigs.forEach((src, i) => {
      const kc = loadKubeConfig(src);
      const id = i === 0 ? this.opts.clusterId : kc.getCurrentContext();
      if (this.clusters.has(id)) throw new Error(`--kubeconfig: two kubeconfigs name cluster "${id}"`);
      this.addCluster(id, kc, i === 0 ? 'config' : 'remote', 'path' in src ? src.path : 'in-cluster');
    });
    const config = this.clusters.get(this.opts.clusterId);
    if (config) {
      this.secretReflector = new Reflector(new KubeClient(config.cluster.client.kc), SECRET_TYPE, {
        upsert: (key, o) => this.onSecret(key, o),
        delete: (key) => this.onSecret(key, undefined),
      }, { ...this.opts.reflector, namespace: this.opts.systemNamespace, labelSelector: `${MULTICLUSTER_SECRET_LABEL}=true`, onSynced: () => this.checkReady() });
      this.secretReflector.start();
      // istiod's kubemesh ConfigMap watch. All ConfigMaps of the system namespace are listed (few), the name filtered here.
      this.meshReflector = new Reflector(new KubeClient(config.cluster.client.kc), CONFIGMAP_TYPE, {
        upsert: (key, o) => { if (key.endsWith(`/${MESH_CONFIGMAP_NAME}`)) this.onMeshConfigMap((o as any).data?.[MESH_CONFIGMAP_KEY]); },
        delete: (key) => { if (key.endsWith(`/${MESH_CONFIGMAP_NAME}`)) this.onMeshConfigMap(undefined); },
      }, { ...this.opts.reflector, namespace: this.opts.systemNamespace, onSynced: () => this.checkReady() });
      this.meshReflector.start();
    }
    const timeout = this.opts.remoteClusterTimeoutMs ?? 30_000;
    this.readyTimer = setInterval(() => this.checkReady(), Math.min(1000, timeout)).unref();
  }

  /** Add (or replace) a cluster. Its objects reach the model through 'change' events as its informers list. */
  addCluster(id: string, kc: KubeConfig, role: 'config' | 'remote', from: string, kubeconfigKey = ''): KubeCluster {
    const prev = this.clusters.get(id);
    if (prev) this.removeCluster(id);
    const cluster = new KubeCluster({
      id, kubeconfig: kc, role, configStore: this.opts.store, systemNamespace: this.opts.systemNamespace,
      log: this.opts.log, reflector: this.opts.reflector, onInvalid: this.opts.onInvalid,
      onSynced: () => { this.checkReady(); this.emit('synced', id); },
    });
    cluster.store.on('change', (ev: ConfigEvent) => this.emit('change', ev));
    this.clusters.set(id, { cluster, addedAt: performance.now(), from, kubeconfigKey });
    this.opts.log.info({ cluster: id, server: cluster.client.server, role, from }, 'cluster added');
    cluster.start();
    return cluster;
  }

  /** Stop a cluster's informers and drop its registry: exactly its endpoints leave the model. */
  removeCluster(id: string): boolean {
    const e = this.clusters.get(id);
    if (!e) return false;
    e.cluster.stop();
    e.cluster.store.removeAllListeners('change');
    this.clusters.delete(id);
    this.opts.log.info({ cluster: id }, 'cluster removed');
    // One event is enough: the debouncer turns it into a full push, which rebuilds without this registry.
    this.emit('change', { op: 'delete', key: { kind: 'Service', namespace: '', name: `*cluster:${id}` }, source: e.cluster.source } satisfies ConfigEvent);
    this.checkReady();
    return true;
  }

  /** The mesh config text, as last seen in the `istio` ConfigMap (undefined: none). */
  get meshConfig(): string | undefined { return this.meshText; }

  private onMeshConfigMap(text: string | undefined): void {
    if (text === this.meshText) return;
    this.meshText = text;
    this.emit('meshConfig', text);
  }

  /** A multicluster Secret changed: each data key is a cluster ID, each value a base64 kubeconfig. */
  private onSecret(key: string, o: Raw | undefined): void {
    const data: Record<string, string> = (o?.data ?? {}) as Record<string, string>;
    const before = this.secretClusters.get(key) ?? new Set<string>();
    const now = new Set<string>();
    for (const [clusterId, b64] of Object.entries(data)) {
      if (clusterId === this.opts.clusterId) {
        this.opts.log.warn({ secret: key, cluster: clusterId }, 'remote secret names the config cluster; ignored');
        continue;
      }
      now.add(clusterId);
      const existing = this.clusters.get(clusterId);
      if (existing && existing.kubeconfigKey === b64) continue;
      try {
        const kc = loadKubeConfig({ yaml: Buffer.from(b64, 'base64').toString('utf8') });
        this.addCluster(clusterId, kc, 'remote', `secret ${key}`, b64);
      } catch (e) {
        this.opts.log.error({ secret: key, cluster: clusterId, err: (e as Error).message }, 'remote secret: bad kubeconfig');
      }
    }
    for (const id of before) if (!now.has(id)) this.removeCluster(id);
    if (now.size) this.secretClusters.set(key, now); else this.secretClusters.delete(key);
  }

  registries(): ClusterRegistry[] {
    const out: ClusterRegistry[] = [];
    const config = this.clusters.get(this.opts.clusterId);
    if (config) out.push({ clusterId: config.cluster.id, network: config.cluster.network(), store: config.cluster.store });
    const remotes = [...this.clusters.values()].filter((e) => e.cluster.id !== this.opts.clusterId)
      .sort((a, b) => (a.cluster.id < b.cluster.id ? -1 : 1));
    for (const e of remotes) out.push({ clusterId: e.cluster.id, network: e.cluster.network(), store: e.cluster.store });
    return out;
  }

  cluster(id: string): KubeCluster | undefined { return this.clusters.get(id)?.cluster; }

  /** Config cluster (and its remote-secret informer) synced; every remote synced or timed out. */
  ready(): boolean {
    const timeout = this.opts.remoteClusterTimeoutMs ?? 30_000;
    const now = performance.now();
    for (const e of this.clusters.values()) {
      if (e.cluster.synced()) continue;
      if (e.cluster.role === 'config') return false;
      if (now - e.addedAt < timeout) return false;
    }
    if (this.secretReflector && !this.secretReflector.synced) return false;
    if (this.meshReflector && !this.meshReflector.synced) return false;
    return true;
  }

  /** Resolves once ready() has been true (or the source was stopped). */
  whenReady(): Promise<void> {
    if (this.readyFired || this.stopped) return Promise.resolve();
    return new Promise((resolve) => { this.once('ready', resolve); this.once('stopped', resolve); });
  }

  private checkReady(): void {
    if (this.readyFired || this.stopped || !this.ready()) return;
    this.readyFired = true;
    this.emit('ready');
  }

  status(): { ready: boolean; clusters: Array<ClusterStatus & { timedOut: boolean }> } {
    const timeout = this.opts.remoteClusterTimeoutMs ?? 30_000;
    const now = performance.now();
    return {
      ready: this.ready(),
      clusters: [...this.clusters.values()].map((e) => ({
        ...e.cluster.status(),
        timedOut: !e.cluster.synced() && e.cluster.role === 'remote' && now - e.addedAt >= timeout,
      })),
    };
  }

  stop(): void {
    this.stopped = true;
    this.emit('stopped');
    if (this.readyTimer) clearInterval(this.readyTimer);
    this.secretReflector?.stop();
    this.meshReflector?.stop();
    for (const e of this.clusters.values()) e.cluster.stop();
  }
}
