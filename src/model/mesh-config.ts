/**
 * MeshConfig → MeshSettings, the mesh-wide part of every PushContext (istiod's push.Mesh). Parsing and
 * validation of the YAML istiod reads from `--meshConfig` / the `istio` ConfigMap's `mesh` key; istiod's defaults
 * (pkg/config/mesh/mesh.go DefaultMeshConfig) for what is unset. Pure: the file and ConfigMap watches live in
 * src/sources.
 */
import YAML from 'yaml';
import { meshConfigSchema, type EnvoyExtAuthzGrpcProvider, type EnvoyExtAuthzHttpProvider } from '../config/schema/mesh.js';
import { zodErrorToFieldErrors, type FieldError } from '../config/schema/errors.js';
import { parseDurationMs } from '../config/schema/common.js';
import type { MeshSettings } from './push-context.js';

export type { EnvoyExtAuthzGrpcProvider, EnvoyExtAuthzHttpProvider } from '../config/schema/mesh.js';

export interface ExtensionProvider {
  name: string;
  envoyExtAuthzHttp?: EnvoyExtAuthzHttpProvider;
  envoyExtAuthzGrpc?: EnvoyExtAuthzGrpcProvider;
}

/** The MeshConfig fields meshpilot honours, as validated (unset = istiod's default); durations in ms. */
export type MeshConfig = Partial<Omit<MeshSettings, 'domainSuffix'>>;

/** istiod's DefaultMeshConfig().LocalityLbSetting: locality load balancing on, no distribute or failover rules. */
export const DEFAULT_LOCALITY_LB_SETTING = Object.freeze({ enabled: true });

const HONOURED = new Set([
  'rootNamespace', 'trustDomain', 'connectTimeout', 'outboundTrafficPolicy', 'localityLbSetting', 'enableAutoMtls',
  'defaultServiceExportTo', 'defaultVirtualServiceExportTo', 'defaultDestinationRuleExportTo', 'extensionProviders',
]);

export type MeshConfigParse =
  | { ok: true; config: MeshConfig; /** Fields istiod knows that meshpilot does not act on. */ ignored: string[] }
  | { ok: false; errors: FieldError[] };

/**
 * Parse mesh config YAML. An empty document is istiod's default mesh; a `kind: ConfigMap` document is read from
 * its `data.mesh` key (so the istio ConfigMap manifest itself can be pointed at).
 */
export function parseMeshConfig(text: string): MeshConfigParse {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    return { ok: false, errors: [{ path: '', message: `invalid YAML: ${(e as Error).message.split('\n')[0]}` }] };
  }
  if (doc === null || doc === undefined) return { ok: true, config: {}, ignored: [] };
  if (typeof doc === 'object' && !Array.isArray(doc) && (doc as any).kind === 'ConfigMap') {
    const mesh = (doc as any).data?.mesh;
    if (typeof mesh !== 'string') return { ok: false, errors: [{ path: 'data.mesh', message: 'the ConfigMap has no "mesh" key' }] };
    const inner = parseMeshConfig(mesh);
    return inner.ok ? inner : { ok: false, errors: inner.errors.map((e) => ({ ...e, path: e.path ? `data.mesh: ${e.path}` : 'data.mesh' })) };
  }
  const r = meshConfigSchema.safeParse(doc);
  if (!r.success) return { ok: false, errors: zodErrorToFieldErrors(r.error) };
  const m = r.data;
  const config: MeshConfig = {};
  if (m.rootNamespace) config.rootNamespace = m.rootNamespace;
  if (m.trustDomain) config.trustDomain = m.trustDomain;
  if (m.connectTimeout) config.connectTimeoutMs = parseDurationMs(m.connectTimeout);
  if (m.outboundTrafficPolicy?.mode) config.outboundTrafficPolicy = m.outboundTrafficPolicy.mode;
  if (m.localityLbSetting) config.localityLbSetting = m.localityLbSetting;
  if (m.enableAutoMtls !== undefined) config.enableAutoMtls = m.enableAutoMtls;
  if (m.defaultServiceExportTo) config.defaultServiceExportTo = m.defaultServiceExportTo;
  if (m.defaultVirtualServiceExportTo) config.defaultVirtualServiceExportTo = m.defaultVirtualServiceExportTo;
  if (m.defaultDestinationRuleExportTo) config.defaultDestinationRuleExportTo = m.defaultDestinationRuleExportTo;
  if (m.extensionProviders) {
    config.extensionProviders = m.extensionProviders.map((p) => ({
      name: p.name,
      ...(p.envoyExtAuthzHttp ? { envoyExtAuthzHttp: p.envoyExtAuthzHttp } : {}),
      ...(p.envoyExtAuthzGrpc ? { envoyExtAuthzGrpc: p.envoyExtAuthzGrpc } : {}),
    }));
  }
  const ignored = Object.keys(m).filter((k) => !HONOURED.has(k)).sort();
  return { ok: true, config, ignored };
}

/** Flag-given values that win over the mesh config (a flag the user typed beats a file, as for env variables). */
export interface MeshFlagOverrides { trustDomain?: string }

/**
 * The settings a PushContext carries: `base` (flags and built-in defaults) with the mesh config applied, then the
 * flags the user set explicitly. Unset optional fields mean istiod's defaults (ALLOW_ANY, locality LB enabled,
 * auto mTLS on, exportTo `*`, no extension providers).
 */
export function meshSettings(base: MeshSettings, config: MeshConfig, overrides: MeshFlagOverrides = {}): MeshSettings {
  const out: MeshSettings = { ...base, ...config, domainSuffix: base.domainSuffix };
  if (overrides.trustDomain) out.trustDomain = overrides.trustDomain;
  if (!out.extensionProviders?.length) delete out.extensionProviders;
  return out;
}

/** The mesh locality LB setting in force (istiod's default when the mesh config leaves it unset). */
export function meshLocalityLbSetting(mesh: MeshSettings): any {
  return mesh.localityLbSetting ?? DEFAULT_LOCALITY_LB_SETTING;
}

/** `FIELD: message; …` for logs. */
export function describeMeshErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
}
