/**
 * Which services a proxy can see: exportTo ("*", ".", or namespaces) and, for sidecars, the Sidecar resource's egress
 * hosts (see sidecar-scope.ts).
 */
import type { Service } from '../../src/model/service.js';
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { sidecarScope, visibleTo } from './sidecar-scope.js';

export { visibleTo };

export function visibleServices(ctx: PushContext, scope: ProxyScope): Service[] {
  return sidecarScope(ctx, scope).services;
}
