/** `meshpilot serve`: flags for what a user types, istiod's environment variables for tuning knobs. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { MeshpilotServer, defaultServerOptions, type ServerOptions } from '../server.js';
import { parseDurationFlag } from '../model/duration.js';
import { LOG_LEVELS } from '../log/logger.js';
import { inClusterAvailable } from '../sources/kube/in-cluster.js';
import type { KubeconfigSource } from '../sources/kube/multicluster.js';
import { SELF_SIGNED_ROOT_TTL_MS } from '../security/ca.js';
import { DEFAULT_ROOT_CHECK_INTERVAL_MS, DEFAULT_ROOT_GRACE_PERIOD_PERCENTILE } from '../security/root-rotator.js';

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

function durationArg(v: string): number {
  try { return parseDurationFlag(v); } catch (e) { throw new InvalidArgumentError((e as Error).message); }
}

function collect(v: string, prev: string[] = []): string[] { return [...prev, v]; }

function envDuration(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  try { return parseDurationFlag(v); } catch (e) { throw new Error(`${name}=${v}: ${(e as Error).message}`); }
}

function envBool(name: string, fallback: boolean): boolean {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  if (/^(true|1)$/i.test(v)) return true;
  if (/^(false|0)$/i.test(v)) return false;
  throw new Error(`${name}=${v}: expected true or false`);
}

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${v}: expected a positive integer`);
  return n;
}

function envNonNegative(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative number`);
  return n;
}

function envPositiveDuration(name: string, fallback: number): number {
  const ms = envDuration(name, fallback);
  if (ms <= 0) throw new Error(`${name}=${process.env[name]}: expected a duration above 0`);
  return ms;
}

function envPercentile(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 100) throw new Error(`${name}=${v}: expected an integer percentage 0..100`);
  return n;
}

export function serveCommand(): Command {
  const d = defaultServerOptions();
  return new Command('serve')
    .description('Run the control plane: watch config, serve xDS and the monitoring port')
    .option('--config-dir <dir>', 'directory of Kubernetes/Istio YAML to load and watch (repeatable)', collect, [])
    .option('--kubeconfig <path>', 'kubeconfig of a Kubernetes cluster to watch (repeatable; the first is the config cluster, env KUBECONFIG; in-cluster config when run in a pod without --config-dir)', collect, [])
    .option('--xds-port <port>', 'plaintext xDS (ADS) port; -1 turns plaintext xDS off', intArg(-1, 65535), d.xdsPort)
    .option('--secure-xds-port <port>', 'TLS port for ADS, SDS and the CA (istiod 15012); -1 turns it off', intArg(-1, 65535), d.secureXdsPort)
    .option('--ca-dir <dir>', 'plugged-in CA (cacerts: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) or where the self-signed root is kept', d.caDir)
    .option('--ca-token-file <file>', 'bearer tokens the CA accepts: lines "TOKEN NAMESPACE SERVICEACCOUNT"')
    .option('--trust-domain <domain>', 'SPIFFE trust domain of issued certificates (wins over the mesh config\'s trustDomain)', d.trustDomain)
    .option('--mesh-config <file>', 'MeshConfig YAML, watched (istiod --meshConfig); without it, a Kubernetes config cluster\'s istio ConfigMap (key mesh) in POD_NAMESPACE')
    .option('--secret-dir <dir>', 'Secret objects (kubernetes.io/tls) for gateway credentialName, served over SDS (repeatable)', collect, [])
    .option('--monitoring-port <port>', 'monitoring port (/ready, /metrics, /debug/*, /debug/ui)', intArg(0, 65535), d.monitoringPort)
    .option('--xds-host <addr>', 'address the xDS port binds', d.host)
    .option('--monitoring-host <addr>', 'address the monitoring port binds (debug data: localhost by default)', d.monitoringHost)
    .option('--workers <n>', 'generation worker threads; 0 generates inline on the main thread', intArg(0, 256), d.workers)
    .option('--worker-idle <duration>', 'a worker thread stops after this long without a task (they start on demand; 30s)', durationArg)
    .option('--debounce-after <duration>', 'quiet period before a push (env PILOT_DEBOUNCE_AFTER; 100ms)', durationArg)
    .option('--debounce-max <duration>', 'longest a change waits for a push (env PILOT_DEBOUNCE_MAX; 10s)', durationArg)
    .option('--push-throttle <n>', 'proxies pushed concurrently (env PILOT_PUSH_THROTTLE; min(15+5×cores,100))', intArg(1, 100000))
    .addOption(new Option('--log-level <level>', 'log level').choices([...LOG_LEVELS]).default(d.logLevel))
    .option('--cluster-id <id>', 'cluster ID of the config this instance reads (env CLUSTER_ID)', process.env.CLUSTER_ID ?? d.clusterId)
    .option('--domain-suffix <suffix>', 'Kubernetes DNS domain suffix', d.domainSuffix)
    .option('--no-cache', 'disable the resource cache (for measurement)')
    .option('--no-push-filter', 'push full changes to every proxy, not only those the change can affect (for measurement)')
    .option('--no-share', 'disable sharing one computation among proxies of the same scope (for measurement)')
    .option('--inline-max <n>', 'generate batches of up to N resources on the main thread (default: adaptive, from measured costs; for measurement)', intArg(0, 1_000_000))
    .option('--max-requests-per-second <n>', 'new xDS streams admitted per second, 0 = unlimited (env PILOT_MAX_REQUESTS_PER_SECOND; min(15+5×cores,100))', intArg(0, 1_000_000))
    .option('--push-ack-timeout <duration>', 'how long a push waits for an ACK before moving on (pacing)', durationArg)
    .option('--warmup-budget <duration>', 'before the xDS port opens, generate what each namespace\'s sidecars share, for at most this long (5s; 0 = off)', durationArg)
    .action(async (o: Record<string, any>, cmd: Command) => {
      const kubeconfigs: KubeconfigSource[] = (o.kubeconfig as string[]).map((p) => ({ path: p }));
      if (kubeconfigs.length === 0 && process.env.KUBECONFIG) kubeconfigs.push({ path: process.env.KUBECONFIG });
      if (kubeconfigs.length === 0 && o.configDir.length === 0 && inClusterAvailable()) kubeconfigs.push({ inCluster: true });
      if (o.configDir.length === 0 && kubeconfigs.length === 0) throw new InvalidArgumentError('give at least one --config-dir or --kubeconfig (or run in a pod for in-cluster config)');
      const opts: ServerOptions = {
        ...d,
        configDirs: o.configDir,
        xdsPort: o.xdsPort,
        monitoringPort: o.monitoringPort,
        host: o.xdsHost,
        monitoringHost: o.monitoringHost,
        workers: o.workers,
        workerIdleMs: o.workerIdle ?? d.workerIdleMs,
        debounceAfterMs: o.debounceAfter ?? envDuration('PILOT_DEBOUNCE_AFTER', d.debounceAfterMs),
        debounceMaxMs: o.debounceMax ?? envDuration('PILOT_DEBOUNCE_MAX', d.debounceMaxMs),
        enableEdsDebounce: envBool('PILOT_ENABLE_EDS_DEBOUNCE', d.enableEdsDebounce),
        pushThrottle: o.pushThrottle ?? envInt('PILOT_PUSH_THROTTLE', d.pushThrottle),
        logLevel: o.logLevel,
        clusterId: o.clusterId,
        domainSuffix: o.domainSuffix,
        cache: o.cache !== false,
        kube: kubeconfigs.length === 0 ? undefined : {
          kubeconfigs,
          systemNamespace: process.env.POD_NAMESPACE || 'istio-system',
          remoteClusterTimeoutMs: envDuration('PILOT_REMOTE_CLUSTER_TIMEOUT', 30_000),
        },
        secureXdsPort: o.secureXdsPort,
        caDir: o.caDir,
        caTokenFile: o.caTokenFile,
        secretDirs: o.secretDir,
        trustDomain: o.trustDomain,
        trustDomainFlag: cmd.getOptionValueSource('trustDomain') === 'cli',
        meshConfigFile: o.meshConfig,
        workloadCertTtlMs: envDuration('DEFAULT_WORKLOAD_CERT_TTL', d.workloadCertTtlMs),
        maxWorkloadCertTtlMs: envDuration('MAX_WORKLOAD_CERT_TTL', d.maxWorkloadCertTtlMs),
        // istiod's self-signed root knobs (pilot/pkg/bootstrap/istio_ca.go); see src/security/root-rotator.ts.
        selfSignedRootTtlMs: envPositiveDuration('CITADEL_SELF_SIGNED_CA_CERT_TTL', SELF_SIGNED_ROOT_TTL_MS),
        rootCertCheckIntervalMs: envDuration('CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL', DEFAULT_ROOT_CHECK_INTERVAL_MS),
        rootCertGracePeriodPercentile: envPercentile('CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE', DEFAULT_ROOT_GRACE_PERIOD_PERCENTILE),
        rootCertRotatorJitter: envBool('CITADEL_ENABLE_JITTER_FOR_ROOT_CERT_ROTATOR', true),
        share: o.share !== false,
        inlineMax: o.inlineMax,
        dependencyFilter: o.pushFilter !== false,
        maxRequestsPerSecond: o.maxRequestsPerSecond ?? envNonNegative('PILOT_MAX_REQUESTS_PER_SECOND', d.maxRequestsPerSecond),
        pushAckTimeoutMs: o.pushAckTimeout ?? d.pushAckTimeoutMs,
        warmupBudgetMs: o.warmupBudget ?? d.warmupBudgetMs,
      };
      const server = new MeshpilotServer(opts);
      const shutdown = (sig: string): void => {
        server.log.info({ signal: sig }, 'shutting down');
        server.stop().then(() => process.exit(0), () => process.exit(1));
      };
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      await server.start();
    });
}
