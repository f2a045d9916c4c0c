/**
 * ProxyScope: everything about a proxy that generation reads. Two proxies with the same scope get the same
 * resources, so the scope's key is what structural sharing groups by (one generation per distinct key).
 */
import { createHash } from 'node:crypto';
import type { Proxy } from './proxy.js';
import type { PushContext } from './push-context.js';
import type { Protocol } from './protocol.js';

export interface InboundInstance {
  hostname: string;
  servicePort: number;
  portName: string;
  /** The workload port traffic is delivered to. */
  targetPort: number;
  protocol: Protocol;
}

export interface ProxyScope {
  type: Proxy['type'];
  generator: Proxy['generator'];
  namespace: string;
  interception: 'REDIRECT' | 'NONE';
  inbound: InboundInstance[];
  /**
   * The proxy's labels restricted to the keys some VirtualService matches with sourceLabels: routes can depend on
   * nothing else about the labels, so proxies of different workloads still share generation.
   */
  labels: Record<string, string>;
  /** `NAMESPACE/NAME` of the Sidecar resource in effect (istiod's SidecarScope), if any. */
  sidecar?: string;
  /** Router proxies: `NAMESPACE/NAME` of every Gateway whose selector matches the proxy, sorted. */
  gateways?: string[];
  /**
   * `region/zone/subzone` of the proxy's workload, only while some DestinationRule makes endpoints depend on it
   * (outlierDetection enables locality failover, localityLbSetting distributes): otherwise it would split sharing.
   */
  locality?: string;
  /** The proxy's labels restricted to the keys security policies select on (and tlsMode); absent when none. */
  securityLabels?: Record<string, string>;
  /**
   * The proxy's labels restricted to the keys the workloadSelectors of its namespace's DestinationRules read: which
   * rule applies to it can depend on nothing else about its labels. Absent when none (always, where no
   * DestinationRule has a workloadSelector).
   */
  drLabels?: Record<string, string>;
  /** True when the proxy can get SDS secrets (connected to the secure port with a verified certificate). */
  sds?: boolean;
  /**
   * The proxy's IP, only while its Sidecar has ingress listeners that read it (no `bind`: the listener binds a
   * global unicast instance IP; defaultEndpoint `0.0.0.0:PORT`: the instance IP is the endpoint).
   */
  instanceIp?: string;
}

/** Go's net.IP.IsGlobalUnicast for IPv4 (istiod's GlobalUnicastIP): not unspecified, loopback, link-local, multicast, broadcast. */
export function isGlobalUnicastIp(ip: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a !== 0 && a !== 127 && !(a === 169 && b === 254) && a < 224;
}

/**
 * Node metadata key the secure port sets (and overwrites) on each ADS stream: 'true' when the connection carries a
 * verified client certificate, so generation knows SDS secrets can reach this proxy.
 */
export const SDS_CAPABLE_METADATA = 'MESHPILOT_SDS_CAPABLE';

/** Label keys PeerAuthentication/AuthorizationPolicy/RequestAuthentication selectors use, plus the tlsMode label. */
const securityKeysByContext = new WeakMap<PushContext, string[]>();
export function securityLabelKeys(ctx: PushContext): string[] {
  let keys = securityKeysByContext.get(ctx);
  if (!keys) {
    const set = new Set<string>(['security.istio.io/tlsMode']);
    for (const list of [ctx.data.peerAuthentications, ctx.data.authorizationPolicies, ctx.data.requestAuthentications]) {
      for (const p of list) for (const k of Object.keys(p.spec?.selector?.matchLabels ?? {})) set.add(k);
    }
    keys = [...set].sort();
    securityKeysByContext.set(ctx, keys);
  }
  return keys;
}

export function scopeFor(proxy: Proxy, ctx: PushContext): ProxyScope {
  const labels = Object.keys(proxy.labels).length > 0 ? proxy.labels : (ctx.workload(proxy.ip)?.labels ?? {});
  const inbound: InboundInstance[] = [];
  if (proxy.type === 'sidecar' && proxy.generator === 'envoy') {
    const seen = new Set<number>();
    for (const svc of ctx.servicesSelecting(proxy.namespace, labels)) {
      for (const p of svc.ports) {
        if (p.protocol === 'UDP') continue;
        const target = typeof p.targetPort === 'number' ? p.targetPort : Number(p.targetPort) || p.port;
        if (seen.has(target)) continue;
        seen.add(target);
        inbound.push({ hostname: svc.hostname, servicePort: p.port, portName: p.name, targetPort: target, protocol: p.protocol });
      }
    }
    inbound.sort((a, b) => a.targetPort - b.targetPort);
  }
  const routeLabels: Record<string, string> = {};
  for (const k of ctx.sourceLabelKeys) if (labels[k] !== undefined) routeLabels[k] = labels[k]!;
  const scope: ProxyScope = {
    type: proxy.type,
    generator: proxy.generator,
    namespace: proxy.namespace,
    interception: proxy.interceptionMode === 'NONE' ? 'NONE' : 'REDIRECT',
    inbound,
    labels: routeLabels,
  };
  if (proxy.type === 'sidecar' && proxy.generator === 'envoy') {
    const sc = ctx.sidecarFor(proxy.namespace, labels);
    if (sc) scope.sidecar = `${sc.namespace}/${sc.name}`;
    const ingress = (sc?.spec.ingress ?? []) as Array<{ bind?: string; defaultEndpoint?: string }>;
    if (ingress.some((l) => (!l.bind && isGlobalUnicastIp(proxy.ip)) || /^(0\.0\.0\.0|\[::\]):/.test(l.defaultEndpoint ?? ''))) scope.instanceIp = proxy.ip;
  }
  const securityLabels: Record<string, string> = {};
  for (const k of securityLabelKeys(ctx)) if (labels[k] !== undefined) securityLabels[k] = labels[k]!;
  if (Object.keys(securityLabels).length > 0) scope.securityLabels = securityLabels;
  const drKeys = ctx.destinationRuleLabelKeys(proxy.namespace);
  if (drKeys.length > 0) {
    const drLabels: Record<string, string> = {};
    for (const k of drKeys) if (labels[k] !== undefined) drLabels[k] = labels[k]!;
    if (Object.keys(drLabels).length > 0) scope.drLabels = drLabels;
  }
  if (proxy.metadata[SDS_CAPABLE_METADATA] === 'true') scope.sds = true;
  if (proxy.type === 'router') {
    scope.gateways = ctx.gatewaysFor(labels).map((g) => `${g.namespace}/${g.name}`).sort();
  }
  if (ctx.localityAware) scope.locality = ctx.workload(proxy.ip)?.locality ?? '';
  return scope;
}

export function scopeKey(scope: ProxyScope): string {
  return createHash('sha1').update(JSON.stringify(scope)).digest('base64url').slice(0, 20);
}
