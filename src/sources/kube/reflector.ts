/**
 * List+watch of one resource type against one API server, with client-go's reflector semantics:
 * - list in pages (`limit`/`continue`; an expired continue token restarts the list), then watch from the list's
 *   resourceVersion with bookmarks; every event advances the resourceVersion, so a dropped or timed-out watch
 *   resumes exactly where it stopped — nothing missed, nothing replayed;
 * - an event whose resourceVersion equals the one already held for that object is a duplicate and is dropped;
 * - 410 Gone (an ERROR event with a Status of code 410, or an HTTP 410) means the server compacted past our
 *   resourceVersion: re-list and hand the sink only the real differences (objects added, changed or gone);
 * - errors back off exponentially with jitter (client-go: 800 ms → 30 s), and a server-closed watch (its
 *   timeoutSeconds, a load balancer, an apiserver restart) is re-opened at once from the last resourceVersion;
 * - a watch that goes silent past its timeout plus a margin is aborted (half-open TCP connections).
 * The sink decides what an object means; the reflector only keeps keys and resourceVersions.
 */
import type { KubeClient } from './kube-client.js';
import { KubeApiError } from './kube-client.js';
import { collectionPath, type Raw, type ResourceType } from './resources.js';

export interface ReflectorSink {
  upsert(key: string, obj: Raw): void;
  delete(key: string, obj: Raw | undefined): void;
}

export interface ReflectorOptions {
  namespace?: string;
  labelSelector?: string;
  /** e.g. `metadata.name=istio-ca-secret` (one object); the sink still checks, servers may ignore unknown fields. */
  fieldSelector?: string;
  pageSize?: number;
  /** Server-side watch timeout range in seconds (client-go: 5–10 min). */
  watchTimeoutSeconds?: [number, number];
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  onSynced?: () => void;
  onError?: (err: Error) => void;
}

export interface ReflectorStats {
  lists: number;
  relistsAfterGone: number;
  watches: number;
  events: number;
  duplicatesDropped: number;
  bookmarks: number;
  errors: number;
}

export type ReflectorState = 'listing' | 'watching' | 'backoff' | 'stopped';

export function objectKey(o: Raw): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

class GoneError extends Error { readonly code = 'ERR_GONE'; }

export class Reflector {
  /** key → resourceVersion of what the sink holds. */
  private readonly known = new Map<string, string>();
  resourceVersion = '';
  synced = false;
  state: ReflectorState = 'listing';
  lastError: string | undefined;
  /** True when the API server does not serve this type (e.g. an Istio CRD not installed): synced as empty. */
  absent = false;
  readonly stats: ReflectorStats = { lists: 0, relistsAfterGone: 0, watches: 0, events: 0, duplicatesDropped: 0, bookmarks: 0, errors: 0 };
  private stopped = false;
  private abort: AbortController | undefined;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private backoffMs: number;

  constructor(
    private readonly client: KubeClient,
    readonly type: ResourceType,
    private readonly sink: ReflectorSink,
    private readonly opts: ReflectorOptions = {},
  ) {
    this.backoffMs = opts.backoffInitialMs ?? 800;
  }

  get path(): string { return collectionPath(this.type, this.opts.namespace); }

  size(): number { return this.known.size; }

  start(): void { void this.run(); }

  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    this.abort?.abort();
    if (this.sleeping) { clearTimeout(this.sleeping.timer); this.sleeping.wake(); }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.list();
        if (this.stopped) break;
        const opened = performance.now();
        const delivered = await this.watchOnce();
        if (delivered) this.backoffMs = this.opts.backoffInitialMs ?? 800;
        else if (performance.now() - opened < 1000 && !this.stopped) {
          // client-go's "very short watch": a server or proxy that closes at once must not make us spin.
          this.state = 'backoff';
          await this.sleep(this.nextBackoff());
        }
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof GoneError || (e as KubeApiError).statusCode === 410) {
          // Compacted past our resourceVersion: re-list (the diff keeps the sink's events to real changes).
          this.resourceVersion = '';
          this.stats.relistsAfterGone++;
          continue;
        }
        if ((e as KubeApiError).statusCode === 404 && !this.resourceVersion) {
          // The type is not served here (CRD not installed): treat as empty and look again later.
          this.absent = true;
          this.replaceAll([]);
          this.markSynced();
          await this.sleep(this.opts.backoffMaxMs ?? 30_000);
          continue;
        }
        this.stats.errors++;
        this.lastError = (e as Error).message;
        this.opts.onError?.(e as Error);
        this.state = 'backoff';
        await this.sleep(this.nextBackoff());
      }
    }
  }

  private nextBackoff(): number {
    const max = this.opts.backoffMaxMs ?? 30_000;
    const d = Math.min(this.backoffMs, max);
    this.backoffMs = Math.min(this.backoffMs * 2, max);
    return d * (0.5 + Math.random() * 0.5);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.sleeping = undefined; resolve(); }, ms);
      this.sleeping = { timer, wake: resolve };
    });
  }

  private async list(): Promise<void> {
    this.state = 'listing';
    this.stats.lists++;
    const limit = this.opts.pageSize ?? 500;
    let cont: string | undefined;
    let rv = '';
    const seen = new Set<string>();
    for (;;) {
      let page;
      try {
        page = await this.client.listPage(this.path, { limit, continue: cont, labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector });
      } catch (e) {
        if (cont && (e as KubeApiError).statusCode === 410) {
          // The continue token expired between pages: start the list over (client-go falls back to a full list).
          cont = undefined; seen.clear();
          continue;
        }
        throw e;
      }
      if (this.stopped) return;
      rv ||= page.resourceVersion;
      for (const item of page.items) {
        const k = objectKey(item);
        seen.add(k);
        this.apply(k, item);
      }
      cont = page.continue;
      if (!cont) break;
    }
    for (const [k] of this.known) if (!seen.has(k)) { this.known.delete(k); this.sink.delete(k, undefined); }
    this.absent = false;
    this.resourceVersion = rv;
    this.markSynced();
  }

  private replaceAll(items: Raw[]): void {
    const seen = new Set(items.map(objectKey));
    for (const it of items) this.apply(objectKey(it), it);
    for (const [k] of this.known) if (!seen.has(k)) { this.known.delete(k); this.sink.delete(k, undefined); }
  }

  private markSynced(): void {
    this.lastError = undefined;
    if (!this.synced) { this.synced = true; this.opts.onSynced?.(); }
  }

  /** Upsert unless the sink already holds this exact resourceVersion. */
  private apply(k: string, o: Raw): boolean {
    const rv = String(o.metadata?.resourceVersion ?? '');
    if (rv && this.known.get(k) === rv) return false;
    this.known.set(k, rv);
    this.sink.upsert(k, o);
    return true;
  }

  /** Resolves true when the stream ended after delivering something, false when it ended empty. */
  private async watchOnce(): Promise<boolean> {
    this.state = 'watching';
    this.stats.watches++;
    const [lo, hi] = this.opts.watchTimeoutSeconds ?? [300, 600];
    const timeoutSeconds = Math.round(lo + Math.random() * (hi - lo));
    let delivered = false;
    return new Promise<boolean>((resolve, reject) => {
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const finish = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        if (watchdog) clearTimeout(watchdog);
        this.abort?.abort();
        this.abort = undefined;
        if (err) reject(err); else resolve(delivered);
      };
      const arm = (): void => {
        if (watchdog) clearTimeout(watchdog);
        watchdog = setTimeout(() => finish(null), (timeoutSeconds + 30) * 1000);
      };
      arm();
      const onEvent = (type: string, obj: Raw): void => {
        if (settled) return;
        arm();
        switch (type) {
          case 'ADDED':
          case 'MODIFIED': {
            this.stats.events++;
            delivered = true;
            if (!this.apply(objectKey(obj), obj)) this.stats.duplicatesDropped++;
            break;
          }
          case 'DELETED': {
            this.stats.events++;
            delivered = true;
            const k = objectKey(obj);
            if (this.known.delete(k)) this.sink.delete(k, obj);
            else this.stats.duplicatesDropped++;
            break;
          }
          case 'BOOKMARK':
            this.stats.bookmarks++;
            break;
          case 'ERROR': {
            const code = obj?.code;
            finish(code === 410 ? new GoneError(obj?.message ?? 'gone') : new KubeApiError(code ?? 500, `watch ${this.path}: ${obj?.message ?? 'error event'}`, obj?.reason));
            return;
          }
          default:
            return;
        }
        const rv = obj?.metadata?.resourceVersion;
        if (rv) this.resourceVersion = String(rv);
      };
      const onDone = (err: any): void => {
        if (err && err.name === 'AbortError') { finish(null); return; }
        if (err) finish(err.statusCode ? new KubeApiError(err.statusCode, `watch ${this.path}: ${err.statusCode} ${err.message}`) : (err as Error));
        else finish(null);
      };
      this.client.watch(this.path, {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
      }, onEvent, onDone).then((ac) => {
        if (settled || this.stopped) ac.abort();
        else this.abort = ac;
      }, (e) => finish(e as Error));
    });
  }
}
