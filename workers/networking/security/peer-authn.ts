/**
 * PeerAuthentication → the mTLS mode of a workload port (istiod's pilot/pkg/security/authn: mesh → namespace →
 * workload → port level; UNSET inherits from the level above; PERMISSIVE when nothing says otherwise).
 */
import type { ConfigEntry, PushContext } from '../../../src/model/push-context.js';
import { hasSelector } from './policy-select.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

function modeOf(m: unknown): MtlsMode | undefined {
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined;
}

/** Oldest first as istiod orders (creation time); our entries carry none, so name order stands in, stably. */
function oldest(list: ConfigEntry[]): ConfigEntry | undefined {
  return [...list].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))[0];
}

export function mtlsModeForPort(ctx: PushContext, namespace: string, labels: Record<string, string>, port: number): MtlsMode {
  const root = ctx.data.mesh.rootNamespace;
  const pas = ctx.data.peerAuthentications;
  const mesh = oldest(pas.filter((p) => p.namespace === root && !hasSelector(p)));
  const ns = namespace === root ? undefined : oldest(pas.filter((p) => p.namespace === namespace && !hasSelector(p)));
  const workload = oldest(pas.filter((p) => p.namespace === namespace && hasSelector(p)
    && Object.entries(p.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => labels[k] === v)));
  let mode: MtlsMode = 'PERMISSIVE';
  for (const level of [mesh, ns, workload]) {
    const m = modeOf(level?.spec?.mtls?.mode);
    if (m) mode = m;
  }
  const portMode = modeOf(workload?.spec?.portLevelMtls?.[String(port)]?.mode);
  return portMode ?? mode;
}
