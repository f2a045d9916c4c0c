/** Build and encode named resources of one type for one scope: the unit of work a worker task performs. */
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { encodeResource } from './generator.js';

export interface GeneratedResource {
  name: string;
  /** The encoded google.protobuf.Any, or null when the resource does not exist for this scope. */
  any: Uint8Array | null;
  error?: string;
}

export function generateResources(ctx: PushContext, scope: ProxyScope, typeUrl: string, names: readonly string[]): GeneratedResource[] {
  return names.map((name) => {
    try {
      return { name, any: encodeResource(ctx, scope, typeUrl, name) };
    } catch (e) {
      // One bad resource must not fail the others: report it, the push engine logs and counts it.
      return { name, any: null, error: (e as Error).message };
    }
  });
}
