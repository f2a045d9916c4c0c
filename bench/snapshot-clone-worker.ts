/** Worker for bench/snapshot.ts's structured-clone baseline: the whole PushContext data arrives with every task. */
import { PushContext, type PushContextData } from '../src/model/push-context.js';
import type { ProxyScope } from '../src/model/scope.js';
import { generateResources } from '../workers/networking/generate-resources.js';

export default function generate(task: { data: PushContextData; scope: ProxyScope; typeUrl: string; names: string[] }): number {
  return generateResources(new PushContext(task.data), task.scope, task.typeUrl, task.names).length;
}
