/**
 * Whether this process runs in a pod with a service-account token (in-cluster config). Kept apart from
 * kube-client.ts so that deciding it does not load @kubernetes/client-node.
 */
import fs from 'node:fs';

export function inClusterAvailable(): boolean {
  return !!process.env.KUBERNETES_SERVICE_HOST && fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');
}
