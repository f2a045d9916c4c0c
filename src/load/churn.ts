/**
 * Churn: endpoint jitter (one endpoint of one service replaced by a unique new address), VirtualService edits (a
 * unique header-match value) and Service edits (a second port with a unique number: a full push, as istiod's
 * pushes on a Service change, whose new cluster `outbound|PORT||HOST` is the marker). Each change carries a marker
 * string that appears verbatim in the encoded resources a proxy receives, so convergence is detected with
 * Buffer.indexOf on the response bytes.
 */
import path from 'node:path';
import type { KubernetesObject, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import YAML from 'yaml';
import { endpointsYaml, serviceFile, serviceYaml, virtualServiceYaml, writeAtomic, type MeshManifest, type ServiceInfo } from './mesh-gen.js';

export type ChurnKind = 'endpoints' | 'vs' | 'service';

export const CHURN_KINDS: readonly ChurnKind[] = ['endpoints', 'vs', 'service'];

export interface ChurnRate { kind: ChurnKind; perSecond: number }

export class ChurnSpecError extends Error {
  readonly code = 'ERR_CHURN_SPEC';
}

/** `endpoints=2,vs=0.5,service=0.2` (changes per second per kind); a bare kind means 1/s. */
export function parseChurnSpec(spec: string): ChurnRate[] {
  const out: ChurnRate[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [k, r] = part.split('=');
    const kind = k === 'endpoint' || k === 'eds' ? 'endpoints' : k === 'virtualservice' ? 'vs' : k === 'services' || k === 'svc' ? 'service' : k;
    if (!CHURN_KINDS.includes(kind as ChurnKind)) throw new ChurnSpecError(`--churn ${spec}: unknown kind "${k}" (endpoints, vs or service)`);
    const perSecond = r === undefined ? 1 : Number(r);
    if (!Number.isFinite(perSecond) || perSecond <= 0) throw new ChurnSpecError(`--churn ${spec}: rate of ${kind} must be a positive number of changes per second`);
    out.push({ kind: kind as ChurnKind, perSecond });
  }
  if (out.length === 0) throw new ChurnSpecError(`--churn ${spec}: no kinds given`);
  return out;
}

export interface ChurnChange {
  seq: number;
  kind: ChurnKind;
  marker: string;
  service: string;
  namespace: string;
  file: string;
}

/** Rewrites files in a mesh made by gen-mesh; the manifest says where everything is. */
export class MeshChurner {
  private seq = 0;
  private readonly ipBase: number;
  private readonly portBase: number;
  private readonly vsServices: ServiceInfo[];

  constructor(private readonly dir: string, private readonly mesh: MeshManifest, private readonly runTag: string) {
    this.ipBase = Math.floor(Math.random() * 500_000);
    this.portBase = Math.floor(Math.random() * 40_000);
    this.vsServices = mesh.services_.filter((s) => s.vsFile);
  }

  /** A 15-character address in 240.0.0.0/4 (reserved, never in a generated mesh): no marker is a prefix of another. */
  private uniqueIp(n: number): string {
    const v = (this.ipBase + n) % 1_000_000;
    return `240.${100 + Math.floor(v / 10_000)}.${100 + (Math.floor(v / 100) % 100)}.${100 + (v % 100)}`;
  }

  canChurn(kind: ChurnKind): boolean { return kind === 'vs' ? this.vsServices.length > 0 : this.mesh.services_.length > 0; }

  /** Make the next change in memory: the change and the new text of its file (nothing written yet). */
  next(kind: ChurnKind): { change: ChurnChange; text: string } {
    const seq = this.seq++;
    if (kind === 'endpoints') {
      // Stride through services so consecutive changes hit different namespaces.
      const svc = this.mesh.services_[(seq * 7919) % this.mesh.services_.length]!;
      const marker = this.uniqueIp(seq);
      svc.endpoints[seq % svc.endpoints.length] = marker;
      return { change: { seq, kind, marker, service: svc.name, namespace: svc.namespace, file: svc.endpointsFile }, text: endpointsYaml(this.mesh, svc) };
    }
    if (kind === 'service') {
      // A port no generated Service has (they all use mesh.port), unique in the run and offset at random per run:
      // a mesh directory keeps what an earlier run wrote, and a port it already gave this service would be no
      // change at all. The previous change's extra port of the same service goes away with this rewrite.
      const svc = this.mesh.services_[(seq * 7919 + 1) % this.mesh.services_.length]!;
      const port = 20000 + ((this.portBase + seq) % 40000);
      const marker = `outbound|${port}||${svc.name}.${svc.namespace}.svc.${this.mesh.domainSuffix}`;
      return { change: { seq, kind, marker, service: svc.name, namespace: svc.namespace, file: serviceFile(svc) }, text: serviceYaml(this.mesh, svc, port) };
    }
    const svc = this.vsServices[(seq * 7919) % this.vsServices.length]!;
    const marker = `mpchurn-${this.runTag}-${String(seq).padStart(6, '0')}`;
    return { change: { seq, kind, marker, service: svc.name, namespace: svc.namespace, file: svc.vsFile! }, text: virtualServiceYaml(svc, marker) };
  }

  /** Make the next change by rewriting its file (a server watching the directory picks it up). */
  change(kind: ChurnKind): ChurnChange {
    const { change, text } = this.next(kind);
    writeAtomic(path.join(this.dir, change.file), text);
    return change;
  }

  /**
   * Make the next change through a Kubernetes API server (server-side apply of the changed object); resolves when
   * the API server has accepted it. The file is rewritten too, so the directory keeps mirroring the mesh.
   */
  async changeVia(kind: ChurnKind, api: KubeChurnApplier): Promise<ChurnChange> {
    const { change, text } = this.next(kind);
    // The API server allocates a Service's clusterIP and refuses to change it: the applied Service leaves it out.
    await api.apply(kind === 'service' ? text.replace(/^ {2}clusterIP: .*\n/m, '') : text);
    writeAtomic(path.join(this.dir, change.file), text);
    return change;
  }
}

/**
 * Server-side apply of churned objects (EndpointSlices, VirtualServices) to the API server of a kubeconfig.
 * Created with open(): the Kubernetes client is loaded only by runs that churn through an API server.
 */
export class KubeChurnApplier {
  private constructor(private readonly client: KubernetesObjectApi, private readonly ssa: PatchStrategy, private readonly fieldManager: string) {}

  static async open(kubeconfigPath: string, fieldManager = 'meshpilot-load'): Promise<KubeChurnApplier> {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return new KubeChurnApplier(k8s.KubernetesObjectApi.makeApiClient(kc), k8s.PatchStrategy.ServerSideApply, fieldManager);
  }

  /** Apply every object of a YAML stream; rejects naming the object when the API server refuses it. */
  async apply(yamlText: string): Promise<void> {
    for (const doc of YAML.parseAllDocuments(yamlText)) {
      const obj = doc.toJSON() as KubernetesObject | null;
      if (!obj) continue;
      try {
        await this.client.patch(obj, undefined, undefined, this.fieldManager, true, this.ssa);
      } catch (e) {
        const err = e as { code?: number; body?: unknown; message?: string };
        throw new Error(`churn: applying ${obj.kind} ${obj.metadata?.namespace}/${obj.metadata?.name} failed: ${err.code ?? ''} ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body ?? err.message)}`);
      }
    }
  }
}
