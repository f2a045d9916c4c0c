/**
 * `meshpilot analyze PATH...`: schema errors plus the semantic checks of `istioctl analyze`, with Istio's message
 * codes (istio pkg/config/analysis/msg/messages.yaml):
 *   IST0101 ReferencedResourceNotFound (Error)  a VirtualService routes to an unknown host, subset or gateway
 *   IST0106 SchemaValidationError (Error)       the document fails the schema the server enforces
 *   IST0130 VirtualServiceUnreachableRule (Warning)  an http rule can never match (a catch-all rule precedes it)
 *   IST0131 VirtualServiceIneffectiveMatch (Info)    a match repeats an earlier rule's match
 *   IST0145 ConflictingGateways (Error)         two Gateways on the same workloads claim the same port and host
 *   IST0173 DestinationRuleSubsetNotSelectPods (Warning)  a subset's labels select no pod of the service
 * Exit codes as istioctl's: 0 nothing at or above --failure-threshold (default Error), 79 issues found,
 * 78 files that could not be parsed as YAML, 2 bad invocation.
 */
import YAML from 'yaml';
import { Command, Option } from 'commander';
import { parseFiles, PathError, type FileResult } from './validate.js';
import { DOMAIN_SUFFIX } from '../model/constants.js';
import { hostMatches, hostsOverlap } from '../model/push-context.js';

export const EXIT_ANALYZER_FOUND_ISSUES = 79;
export const EXIT_DATA_ERROR = 78;
export const EXIT_USAGE = 2;

export type Level = 'Error' | 'Warning' | 'Info';
const LEVEL_RANK: Record<Level, number> = { Info: 0, Warning: 1, Error: 2 };

export interface Message {
  level: Level;
  code: string;
  /** `Kind namespace/name` */
  resource: string;
  origin?: string;
  text: string;
}

export function formatMessage(m: Message): string {
  return `${m.level} [${m.code}] (${m.resource}${m.origin ? ` ${m.origin}` : ''}) ${m.text}`;
}

interface Obj {
  kind: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  spec: any;
  origin: string;
}

/** Line of each document's start in a file (1-based), by document index. */
function docLines(text: string): number[] {
  return YAML.parseAllDocuments(text).map((d: any) => {
    const start = (d.contents?.range?.[0] ?? d.range?.[0] ?? 0) as number;
    return text.slice(0, start).split('\n').length;
  });
}

function qualify(host: string, ns: string): string {
  return host.includes('.') || host.includes('*') ? host : `${host}.${ns}.svc.${DOMAIN_SUFFIX}`;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

const ref = (o: Obj): string => `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;

export function analyzeObjects(objs: readonly Obj[]): Message[] {
  const out: Message[] = [];
  const of = (kind: string): Obj[] => objs.filter((o) => o.kind === kind);
  const msg = (o: Obj, level: Level, code: string, text: string): void => { out.push({ level, code, resource: ref(o), origin: o.origin, text }); };

  // The registry as the analyzers see it: Kubernetes Services and ServiceEntry hosts.
  const services = new Map<string, Obj>();
  for (const s of of('Service')) services.set(`${s.name}.${s.namespace}.svc.${DOMAIN_SUFFIX}`, s);
  const entryHosts: string[] = of('ServiceEntry').flatMap((se) => (se.spec?.hosts ?? []) as string[]);
  const hostKnown = (h: string): boolean => services.has(h) || entryHosts.some((p) => hostMatches(p, h));
  const workloads = [...of('Pod'), ...of('WorkloadEntry').map((w) => ({ ...w, labels: { ...w.labels, ...(w.spec?.labels ?? {}) } }))];

  // DestinationRule subsets by host (a rule's host is qualified in its own namespace).
  const subsetsByHost = new Map<string, Set<string>>();
  for (const dr of of('DestinationRule')) {
    const host = qualify(String(dr.spec?.host ?? ''), dr.namespace);
    const set = subsetsByHost.get(host) ?? new Set<string>();
    for (const s of (dr.spec?.subsets ?? []) as Array<{ name: string }>) set.add(s.name);
    subsetsByHost.set(host, set);
  }

  const gateways = of('Gateway');
  const gatewayKnown = (name: string, ns: string): boolean => {
    const [gns, gname] = name.includes('/') ? name.split('/') as [string, string] : [ns, name];
    return gateways.some((g) => g.namespace === gns && g.name === gname);
  };

  for (const vs of of('VirtualService')) {
    for (const g of (vs.spec?.gateways ?? []) as string[]) {
      if (g !== 'mesh' && !gatewayKnown(g, vs.namespace)) msg(vs, 'Error', 'IST0101', `Referenced gateway not found: "${g}"`);
    }
    const http = (vs.spec?.http ?? []) as any[];
    const dests: Array<{ host: string; subset?: string }> = [];
    for (const kind of ['http', 'tcp', 'tls'] as const) {
      for (const rule of (vs.spec?.[kind] ?? []) as any[]) {
        for (const r of (rule.route ?? []) as any[]) if (r.destination?.host) dests.push(r.destination);
        if (rule.mirror?.host) dests.push(rule.mirror);
      }
    }
    const reported = new Set<string>();
    for (const d of dests) {
      const host = qualify(d.host, vs.namespace);
      if (!hostKnown(host)) {
        if (!reported.has(host)) msg(vs, 'Error', 'IST0101', `Referenced host not found: "${d.host}"`);
        reported.add(host);
        continue;
      }
      if (d.subset && !subsetsByHost.get(host)?.has(d.subset) && !reported.has(`${host}+${d.subset}`)) {
        reported.add(`${host}+${d.subset}`);
        msg(vs, 'Error', 'IST0101', `Referenced host+subset in destinationrule not found: "${d.host}+${d.subset}"`);
      }
    }
    // Unreachable rules: a rule without match (or with a catch-all match) makes every later rule dead.
    const seen = new Map<string, number>();
    http.forEach((rule, i) => {
      const matches = (rule.match ?? []) as any[];
      const catchAll = matches.length === 0 || matches.some((m) => isCatchAll(m));
      const earlier = http.findIndex((r, j) => j < i && (((r.match ?? []) as any[]).length === 0 || ((r.match ?? []) as any[]).some(isCatchAll)));
      if (earlier >= 0) {
        msg(vs, 'Warning', 'IST0130', `VirtualService rule #${i}${rule.name ? ` (${rule.name})` : ''} not used (rule #${earlier} before it matches every request).`);
        return;
      }
      if (matches.length === 0 && i < http.length - 1) return; // the rules after it are reported above
      matches.forEach((m, k) => {
        const key = JSON.stringify(canonical(m));
        const prev = seen.get(key);
        if (prev !== undefined && !catchAll) msg(vs, 'Info', 'IST0131', `VirtualService rule #${i} match #${k} is not used (duplicate/overlapping match in rule #${prev}).`);
        else if (prev === undefined) seen.set(key, i);
      });
    });
  }

  // Subsets that select no workload of their service.
  for (const dr of of('DestinationRule')) {
    const host = qualify(String(dr.spec?.host ?? ''), dr.namespace);
    const svc = services.get(host);
    if (!svc) continue; // ServiceEntry hosts or unknown hosts: nothing to check pods against
    const selector = svc.spec?.selector as Record<string, string> | undefined;
    for (const s of (dr.spec?.subsets ?? []) as Array<{ name: string; labels?: Record<string, string> }>) {
      const selected = workloads.some((w) => w.namespace === svc.namespace && selects(selector, w.labels) && selects(s.labels ?? {}, w.labels));
      if (!selected) msg(dr, 'Warning', 'IST0173', `The Subset ${s.name} defined in the DestinationRule does not select any pods.`);
    }
  }

  // Gateways on the same workloads (same selector) claiming the same port and an overlapping host.
  const claims = gateways.flatMap((g) => ((g.spec?.servers ?? []) as any[]).map((s) => ({
    g, selector: Object.entries((g.spec?.selector ?? {}) as Record<string, string>).sort().map(([k, v]) => `${k}=${v}`).join(','),
    port: Number(s.port?.number), hosts: ((s.hosts ?? []) as string[]).map((h) => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h)),
  })));
  for (const a of claims) {
    const conflicts = claims.filter((b) => b.g !== a.g && b.selector === a.selector && b.port === a.port && b.hosts.some((h) => a.hosts.some((x) => hostsOverlap(x, h))));
    if (conflicts.length === 0) continue;
    const others = [...new Set(conflicts.map((c) => `${c.g.namespace}/${c.g.name}`))].join(',');
    const hosts = [...new Set(conflicts.flatMap((c) => c.hosts.filter((h) => a.hosts.some((x) => hostsOverlap(x, h)))))].join(',');
    msg(a.g, 'Error', 'IST0145', `Conflict with gateways ${others} (workload selector ${a.selector}, port ${a.port}, hosts ${hosts}).`);
  }
  return out;
}

function isCatchAll(m: any): boolean {
  const keys = Object.keys(m ?? {}).filter((k) => k !== 'name');
  if (keys.length === 0) return true;
  return keys.length === 1 && keys[0] === 'uri' && (m.uri.prefix === '/' || m.uri.regex === '.*');
}

function canonical(m: any): unknown {
  const { name: _n, ...rest } = m ?? {};
  return Object.fromEntries(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
}

export interface AnalyzeResult { messages: Message[]; parseErrors: number; files: number }

export function analyzeFiles(results: readonly FileResult[]): AnalyzeResult {
  const messages: Message[] = [];
  const objs: Obj[] = [];
  let parseErrors = 0;
  for (const r of results) {
    const lines = docLines(r.text);
    for (const e of r.parsed.errors) {
      const origin = `${r.file}:${lines[e.docIndex] ?? 1}`;
      if (e.reason.startsWith('YAML:')) { parseErrors++; messages.push({ level: 'Error', code: 'IST0106', resource: 'file', origin, text: `Could not parse: ${e.reason}` }); continue; }
      const resource = e.kind ? `${e.kind}${e.objectName ? ` ${e.objectName}` : ''}` : `document ${e.docIndex}`;
      messages.push({ level: 'Error', code: 'IST0106', resource, origin, text: `Schema validation error: ${e.field ? `${e.field}: ` : ''}${e.reason}` });
    }
    for (const d of r.parsed.docs) {
      const m = d.resource.metadata as { name: string; namespace?: string; labels?: Record<string, string> };
      objs.push({
        kind: d.resource.kind, name: m.name, namespace: d.resource.kind === 'Namespace' ? '' : (m.namespace ?? 'default'),
        labels: m.labels ?? {}, spec: (d.resource as { spec?: unknown }).spec, origin: `${r.file}:${lines[d.index] ?? 1}`,
      });
    }
  }
  messages.push(...analyzeObjects(objs));
  return { messages, parseErrors, files: results.length };
}

export function runAnalyze(paths: readonly string[], opts: { failureThreshold: Level; outputThreshold: Level; json?: boolean }, out: (s: string) => void): number {
  let results: FileResult[];
  try { results = parseFiles(paths); } catch (e) {
    if (e instanceof PathError) { out(`Error: ${e.message}\n`); return EXIT_USAGE; }
    throw e;
  }
  const { messages, parseErrors, files } = analyzeFiles(results);
  const shown = messages.filter((m) => LEVEL_RANK[m.level] >= LEVEL_RANK[opts.outputThreshold]);
  if (opts.json) out(`${JSON.stringify(shown, null, 2)}\n`);
  else if (shown.length === 0) out(`✔ No validation issues found when analyzing ${files} file${files === 1 ? '' : 's'}.\n`);
  else for (const m of shown) out(`${formatMessage(m)}\n`);
  if (parseErrors > 0) return EXIT_DATA_ERROR;
  return messages.some((m) => LEVEL_RANK[m.level] >= LEVEL_RANK[opts.failureThreshold]) ? EXIT_ANALYZER_FOUND_ISSUES : 0;
}

export function analyzeCommand(): Command {
  const levels = ['Error', 'Warning', 'Info'];
  return new Command('analyze')
    .description('Find problems in Istio config files: schema errors, unknown hosts/subsets/gateways, subsets selecting no pods, conflicting gateways, unreachable routes (exit 0, 79 issues found, 78 unparseable YAML)')
    .argument('<paths...>', 'files or directories')
    .addOption(new Option('--failure-threshold <level>', 'lowest level that makes the exit code non-zero').choices(levels).default('Error'))
    .addOption(new Option('--output-threshold <level>', 'lowest level printed').choices(levels).default('Info'))
    .addOption(new Option('-o, --output <format>', 'log or json').choices(['log', 'json']).default('log'))
    .action((paths: string[], o: { failureThreshold: Level; outputThreshold: Level; output: string }) => {
      process.exitCode = runAnalyze(paths, { failureThreshold: o.failureThreshold, outputThreshold: o.outputThreshold, json: o.output === 'json' }, (s) => process.stdout.write(s));
    });
}
