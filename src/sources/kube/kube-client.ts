/**
 * The transport to one API server, built on @kubernetes/client-node 1.x: its KubeConfig (kubeconfig files,
 * in-cluster service-account token and CA, exec/OIDC auth, TLS) and its Watch (chunked watch streams). Lists go
 * through the same KubeConfig request options but are read as raw JSON: the model projects wire objects, and the
 * generated clients' per-field deserialisation would only cost time on 10,000 pods.
 */
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import { KubeConfig, Watch } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  readonly code = 'ERR_KUBE_API';
  constructor(readonly statusCode: number, message: string, readonly reason?: string) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** A kubeconfig from a path, or in-cluster config (service-account token and CA from the standard paths). */
export function loadKubeConfig(source: { path: string } | { inCluster: true } | { yaml: string }): KubeConfig {
  const kc = new KubeConfig();
  if ('inCluster' in source) kc.loadFromCluster();
  else if ('yaml' in source) kc.loadFromString(source.yaml);
  else {
    if (!fs.existsSync(source.path)) throw new Error(`--kubeconfig ${source.path}: no such file`);
    kc.loadFromFile(source.path);
  }
  if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
  return kc;
}

export interface ListPage { items: Record<string, any>[]; resourceVersion: string; continue?: string }

export class KubeClient {
  private readonly watcher: Watch;
  readonly server: string;

  constructor(readonly kc: KubeConfig) {
    this.watcher = new Watch(kc);
    this.server = kc.getCurrentCluster()!.server;
  }

  /** One request, JSON in and out; a non-2xx answer becomes a KubeApiError with the Status's code and reason. */
  async request(method: string, path: string, query: Record<string, string | number | undefined> = {}, body?: unknown, timeoutMs = 60_000, contentType = 'application/json'): Promise<any> {
    const url = new URL(this.server.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    const opts = (await this.kc.applyToFetchOptions({})) as { agent?: http.Agent; headers?: Iterable<[string, string]> };
    // client-node hands back a WHATWG Headers object (auth token, exec/OIDC credentials).
    const headers: Record<string, string> = { accept: 'application/json', ...Object.fromEntries(opts.headers ?? []) };
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload) headers['content-type'] = contentType;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent: opts.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: any;
          try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(parsed);
          else reject(new KubeApiError(code, `${method} ${url.pathname}: ${code} ${parsed?.message ?? res.statusMessage ?? ''}`.trim(), parsed?.reason));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  async listPage(path: string, opts: { limit: number; continue?: string; labelSelector?: string; fieldSelector?: string }): Promise<ListPage> {
    const body = await this.request('GET', path, { limit: opts.limit, continue: opts.continue, labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector });
    return { items: body?.items ?? [], resourceVersion: body?.metadata?.resourceVersion ?? '', continue: body?.metadata?.continue || undefined };
  }

  /**
   * Start a watch; `onEvent` gets each decoded event, `onDone` once when the stream ends (null: closed, normal at
   * timeoutSeconds or a dropped connection; an Error with statusCode on a non-200 answer). Returns the abort handle.
   */
  watch(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (type: string, obj: any) => void, onDone: (err: any) => void): Promise<AbortController> {
    return this.watcher.watch(path, query, (type: string, obj: any) => onEvent(type, obj), onDone);
  }
}
