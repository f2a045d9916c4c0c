/**
 * `meshpilot load`: simulate N proxies against any xDS server (meshpilot, istiod, …) and measure it; and
 * `meshpilot load gen-mesh`: write a synthetic mesh for it.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDurationFlag } from '../model/duration.js';
import { defaultLoadOptions, formatReport, runLoad, type LoadOptions } from '../load/run-load.js';
import { parseChurnSpec } from '../load/churn.js';
import { defaultMeshSpec, generateMesh, type MeshFormat } from '../load/mesh-gen.js';

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

function numArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
}

function durationArg(v: string): number {
  try { return parseDurationFlag(v); } catch (e) { throw new InvalidArgumentError((e as Error).message); }
}

function churnArg(v: string): ReturnType<typeof parseChurnSpec> {
  try { return parseChurnSpec(v); } catch (e) { throw new InvalidArgumentError((e as Error).message); }
}

function targetArg(v: string): string {
  if (!/^[^\s:]+:\d+$/.test(v) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(v)) throw new InvalidArgumentError('expected HOST:PORT');
  return v;
}

function genMeshCommand(): Command {
  const d = defaultMeshSpec();
  return new Command('gen-mesh')
    .description('Write a synthetic mesh (services × namespaces × endpoints) as YAML a server reads')
    .requiredOption('--out <dir>', 'directory to write (created)')
    .option('--services <n>', 'services in total', intArg(1, 1_000_000), d.services)
    .option('--namespaces <n>', 'namespaces the services are spread over', intArg(1, 10_000), d.namespaces)
    .option('--endpoints <n>', 'endpoints per service', intArg(1, 10_000), d.endpoints)
    .option('--sidecar-isolation', 'a namespace-local Sidecar in each namespace (egress ./* and istio-system/*)', false)
    .option('--vs-every <n>', 'one VirtualService per this many services (0 = none)', intArg(0, 1_000_000), d.vsEvery)
    .addOption(new Option('--format <format>', 'kube: Service + EndpointSlice; istiod: ServiceEntry + WorkloadEntry').choices(['kube', 'istiod']).default('kube'))
    .action((o: Record<string, any>) => {
      const m = generateMesh({
        ...d, services: o.services, namespaces: o.namespaces, endpoints: o.endpoints,
        sidecarIsolation: o.sidecarIsolation, vsEvery: o.vsEvery, format: o.format as MeshFormat,
      }, o.out);
      process.stderr.write(`wrote ${m.services} services in ${m.namespaces} namespaces, ${m.endpoints} endpoints each, ` +
        `${m.services_.filter((s) => s.vsFile).length} VirtualServices${m.sidecarIsolation ? ', Sidecar isolation' : ''} (${m.format}) to ${o.out}\n`);
    });
}

export function loadCommand(): Command {
  const d = defaultLoadOptions();
  return new Command('load')
    .description('Simulate N proxies on real ADS streams against an xDS server and measure convergence, bytes, CPU and memory')
    .option('--target <host:port>', 'xDS server address', targetArg)
    .option('--proxies <n>', 'simulated proxies (one ADS stream each)', intArg(1, 1_000_000))
    .option('--delta', 'use delta xDS (DeltaAggregatedResources) instead of state of the world', false)
    .option('--proxyless', 'proxyless gRPC clients (node metadata GENERATOR=grpc) instead of Envoy sidecars', false)
    .option('--mesh <dir>', 'a mesh made by `load gen-mesh`: proxies are placed in its namespaces, churn rewrites its files')
    .option('--namespaces <list>', 'comma-separated namespaces for the proxies (default: the mesh\'s, or "default")', (v: string) => v.split(',').filter(Boolean))
    .option('--churn <spec>', 'changes per second per kind (endpoints, vs, service), e.g. endpoints=2,vs=0.5,service=0.2', churnArg)
    .option('--churn-kubeconfig <file>', 'make each change through this kubeconfig\'s API server (server-side apply) instead of rewriting --mesh files')
    .option('--duration <duration>', 'length of the churn phase', durationArg, d.durationMs)
    .option('--streams-per-conn <n>', 'ADS streams per HTTP/2 connection (1 = as real proxies connect)', intArg(1, 100_000), d.streamsPerConn)
    .option('--connect-rate <n>', 'new streams per second (0 = all at once)', numArg, d.connectRate)
    .option('--max-pending-connects <n>', 'new connections handshaking at once (bounds the SYN burst of a storm)', intArg(1, 1_000_000), d.maxPendingConnects)
    .option('--connect-timeout <duration>', 'how long the connect storm may take', durationArg, d.connectTimeoutMs)
    .option('--event-timeout <duration>', 'how long one change may take to reach every proxy', durationArg, d.eventTimeoutMs)
    .option('--server-pid <pid>', 'sample this process\'s CPU and RSS from /proc', intArg(1, 2 ** 31))
    .option('--interception-mode <mode>', 'node metadata INTERCEPTION_MODE', d.interceptionMode)
    .option('--istio-version <v>', 'node metadata ISTIO_VERSION', d.istioVersion)
    .option('--cluster-id <id>', 'node metadata CLUSTER_ID', d.clusterId)
    .option('--record <dir>', 'record every response for the floor server (bench/floor-server)')
    .option('--floor-recording <dir>', 'replay mode: churn is the recorded events, pushed by the floor server')
    .option('--floor-control <url>', 'the floor server\'s control URL (with --floor-recording)')
    .option('--json <file>', 'write the full report as JSON')
    .option('--quiet', 'no per-second progress lines', false)
    // gen-mesh has its own --namespaces: options after a subcommand belong to it.
    .enablePositionalOptions()
    .addCommand(genMeshCommand())
    .action(async (o: Record<string, any>) => {
      if (!o.target) throw new InvalidArgumentError('--target HOST:PORT is required');
      if (!o.proxies) throw new InvalidArgumentError('--proxies N is required');
      const opts: LoadOptions = {
        ...d,
        target: o.target,
        proxies: o.proxies,
        mode: o.delta ? 'delta' : 'sotw',
        proxyless: o.proxyless,
        meshDir: o.mesh,
        namespaces: o.namespaces,
        churn: o.churn,
        churnKubeconfig: o.churnKubeconfig,
        durationMs: o.duration,
        streamsPerConn: o.streamsPerConn,
        connectRate: o.connectRate,
        maxPendingConnects: o.maxPendingConnects,
        connectTimeoutMs: o.connectTimeout,
        eventTimeoutMs: o.eventTimeout,
        serverPid: o.serverPid,
        interceptionMode: o.interceptionMode,
        istioVersion: o.istioVersion,
        clusterId: o.clusterId,
        record: o.record,
        floorRecording: o.floorRecording,
        floorControl: o.floorControl,
        progress: !o.quiet,
      };
      const report = await runLoad(opts);
      process.stderr.write(`${formatReport(report)}\n`);
      if (o.json) fs.writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(`${JSON.stringify(report)}\n`);
      // Open sockets must not keep a finished run alive.
      process.exitCode = report.connect.ready === 0 ? 1 : 0;
    });
}
