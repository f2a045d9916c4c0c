/**
 * One Kubernetes cluster as a config source: reflectors for the registry kinds (Service, EndpointSlice, Pod,
 * Namespace, Node) feeding this cluster's own ConfigStore — so two clusters' `default/reviews` never collide and
 * every endpoint knows its cluster — and, for the config cluster only, the Istio kinds feeding the main store
 * (as istiod reads Istio config from its own cluster and only service discovery from remote ones).
 *
 * Objects are projected (src/sources/kube/resources.ts) and schema-validated before they reach a store; an invalid
 * object is reported by name and field and its last good state stays in force.
 */
import { ConfigStore, type ConfigKey } from '../../config/store.js';
import { CLUSTER_SCOPED } from '../../config/kinds.js';
import { validateResource, type KubeResource } from '../../config/schema/index.js';
import { MeshpilotError } from '../../config/errors.js';
import type { Logger } from '../../log/logger.js';
import { KubeClient } from './kube-client.js';
import { Reflector, type ReflectorOptions } from './reflector.js';
import { ISTIO_TYPES, REGISTRY_TYPES, type Raw, type ResourceType } from './resources.js';
import type { KubeConfig } from '@kubernetes/client-node';

export const NETWORK_LABEL = 'topology.istio.io/network';

/** A watched object failed validation; names cluster, kind, object and field. */
export class KubeObjectInvalidError extends MeshpilotError {
  override readonly code = 'ERR_KUBE_OBJECT_INVALID';
  constructor(readonly clusterId: string, readonly kind: string, readonly objectName: string, readonly field: string, readonly reason: string) {
    super(`cluster ${clusterId}: ${kind} ${objectName}: ${field ? `${field}: ` : ''}${reason}`);
    this.name = 'KubeObjectInvalidError';
  }
}

export type SyncState = 'syncing' | 'synced' | 'error' | 'stopped';

export interface ClusterStatus {
  id: string;
  server: string;
  role: 'config' | 'remote';
  network?: string;
  state: SyncState;
  /** Milliseconds from start to every informer synced. */
  syncedAfterMs?: number;
  informers: Array<{ kind: string; synced: boolean; absent: boolean; objects: number; state: string; resourceVersion: string; lastError?: string; stats: Reflector['stats'] }>;
}

export interface KubeClusterOptions {
  id: string;
  kubeconfig: KubeConfig;
  role: 'config' | 'remote';
  /** Main store, for the Istio kinds of the config cluster. */
  configStore?: ConfigStore;
  /** istiod's own namespace: its label topology.istio.io/network names this cluster's network. */
  systemNamespace: string;
  log: Logger;
  reflector?: Partial<ReflectorOptions>;
  onInvalid?: (err: KubeObjectInvalidError) => void;
  onSynced?: (cluster: KubeCluster) => void;
}

function storeKey(kind: string, reflectorKey: string): ConfigKey {
  const slash = reflectorKey.indexOf('/');
  const ns = reflectorKey.slice(0, slash);
  return { kind, namespace: CLUSTER_SCOPED.has(kind) ? '' : (ns || 'default'), name: reflectorKey.slice(slash + 1) };
}

export class KubeCluster {
  readonly id: string;
  readonly role: 'config' | 'remote';
  /** This cluster's registry objects (projected). */
  readonly store = new ConfigStore();
  readonly client: KubeClient;
  readonly source: string;
  private readonly reflectors: Reflector[] = [];
  private readonly startedAt = performance.now();
  private syncedAfterMs: number | undefined;
  private stopped = false;
  rejected = 0;

  constructor(private readonly opts: KubeClusterOptions) {
    this.id = opts.id;
    this.role = opts.role;
    this.client = new KubeClient(opts.kubeconfig);
    this.source = `kube:${opts.id}`;
  }

  start(): void {
    const types: Array<[ResourceType, ConfigStore]> = REGISTRY_TYPES.map((t) => [t, this.store]);
    if (this.role === 'config' && this.opts.configStore) for (const t of ISTIO_TYPES) types.push([t, this.opts.configStore]);
    for (const [type, store] of types) {
      const r = new Reflector(this.client, type, this.sinkFor(type, store), {
        ...this.opts.reflector,
        onSynced: () => this.checkSynced(),
        onError: (e) => this.opts.log.warn({ cluster: this.id, kind: type.kind, err: e.message }, 'watch error; retrying with backoff'),
      });
      this.reflectors.push(r);
    }
    for (const r of this.reflectors) r.start();
  }

  private sinkFor(type: ResourceType, store: ConfigStore) {
    return {
      upsert: (_key: string, raw: Raw): void => {
        let res: KubeResource = type.project(raw);
        if (type.validate) {
          const v = validateResource(res);
          if (!v.ok) {
            this.rejected++;
            const name = `${raw.metadata?.namespace ? raw.metadata.namespace + '/' : ''}${raw.metadata?.name}`;
            for (const e of v.errors) this.opts.onInvalid?.(new KubeObjectInvalidError(this.id, type.kind, name, e.path, e.message));
            return; // last good state stays
          }
          res = v.value;
        }
        store.upsert(res, this.source);
      },
      delete: (key: string): void => { store.delete(storeKey(type.kind, key), this.source); },
    };
  }

  private checkSynced(): void {
    if (this.syncedAfterMs !== undefined || !this.reflectors.every((r) => r.synced)) return;
    this.syncedAfterMs = performance.now() - this.startedAt;
    this.opts.log.info({ cluster: this.id, ms: Math.round(this.syncedAfterMs), objects: this.store.size() }, 'cluster synced');
    this.opts.onSynced?.(this);
  }

  synced(): boolean { return this.syncedAfterMs !== undefined; }

  /** The network this cluster's endpoints are on: the system namespace's topology.istio.io/network label. */
  network(): string | undefined {
    return this.store.get({ kind: 'Namespace', namespace: '', name: this.opts.systemNamespace })?.resource.metadata.labels?.[NETWORK_LABEL];
  }

  status(): ClusterStatus {
    const state: SyncState = this.stopped ? 'stopped' : this.synced() ? 'synced'
      : this.reflectors.some((r) => r.lastError) ? 'error' : 'syncing';
    return {
      id: this.id, server: this.client.server, role: this.role, network: this.network(), state,
      syncedAfterMs: this.syncedAfterMs === undefined ? undefined : Math.round(this.syncedAfterMs),
      informers: this.reflectors.map((r) => ({
        kind: r.type.kind, synced: r.synced, absent: r.absent, objects: r.size(), state: r.state,
        resourceVersion: r.resourceVersion, lastError: r.lastError, stats: { ...r.stats },
      })),
    };
  }

  /** Stop watching. Its registry store is dropped by the owner; its Istio objects leave the main store here. */
  stop(): void {
    this.stopped = true;
    for (const r of this.reflectors) r.stop();
    if (this.role === 'config' && this.opts.configStore) {
      for (const c of this.opts.configStore.ownedBy(this.source)) this.opts.configStore.delete(c.key, this.source);
    }
  }
}
