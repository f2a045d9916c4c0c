/** Which services a proxy can see: exportTo ("*", ".", or namespaces), as istiod's SidecarScope default. */
import type { Service } from '../../src/model/service.js';
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';

export function visibleTo(svc: Service, namespace: string): boolean {
  for (const e of svc.exportTo) {
    if (e === '*') return true;
    if (e === '.' ? svc.namespace === namespace : e === namespace) return true;
  }
  return false;
}

export function visibleServices(ctx: PushContext, scope: ProxyScope): Service[] {
  return ctx.services.filter((s) => visibleTo(s, scope.namespace));
}
