/**
 * Which DestinationRule a proxy applies to a service (istio pilot/pkg/model/push_context.go setDestinationRules,
 * destinationRule, getExportedDestinationRuleFromNamespace; destination_rule.go mergeDestinationRule).
 *
 * The rules are indexed once per rule list, oldest first (sortConfigBySelectorAndCreationTime), in three pools:
 * - by namespace, the rules that namespace sees of its own (no exportTo, `*`, `.` or the namespace itself);
 * - by namespace, the rules exported beyond it (all but those exported to `.` or to their own namespace only);
 * - the root namespace's private ones.
 * Within a pool, rules for the same host with the same exportTo are merged into one (mergeDestinationRule):
 * subsets are concatenated, the first one of a name wins; the first top-level trafficPolicy is kept. Rules with
 * different exportTo stay separate entries (ENABLE_ENHANCED_DESTINATIONRULE_MERGE, istiod's default).
 *
 * A proxy in namespace P looking at a service of namespace S takes, from the first step that has a match for the
 * host (the exact host before the longest matching wildcard, MostSpecificHostMatch):
 * 1. P's own pool (for a proxy in the root namespace: the root's private rules);
 * 2. S's exported pool, keeping the entries exported to P (none: on to the next step);
 * 3. the root namespace's exported pool, likewise;
 * and no rule otherwise: a rule in any other namespace never applies. Of several entries, the last one wins, as
 * SidecarScope.DestinationRule keeps the last one without a workloadSelector (workloadSelector is not supported
 * here: such a rule is treated like any other).
 */
import { byCreation } from './service.js';
import { exportedEverywhere, hostMatches, type ConfigEntry } from './push-context.js';

interface Entry { rule: ConfigEntry; exportTo: readonly string[] }

/** One pool: entries by exact host, and wildcard hosts longest first. */
class Pool {
  private readonly exact = new Map<string, Entry[]>();
  private readonly wildcard = new Map<string, Entry[]>();
  private wildcardHosts: string[] | undefined;

  add(host: string, dr: ConfigEntry): void {
    const byHost = host.startsWith('*') ? this.wildcard : this.exact;
    const entries = byHost.get(host);
    if (!entries) { byHost.set(host, [{ rule: dr, exportTo: exportToOf(dr) }]); this.wildcardHosts = undefined; return; }
    const ex = exportToOf(dr);
    const i = entries.findIndex((e) => sameSet(e.exportTo, ex));
    if (i < 0) entries.push({ rule: dr, exportTo: ex });
    else entries[i] = { rule: merged(entries[i]!.rule, dr), exportTo: ex };
  }

  /** The entries for the most specific host matching `hostname` (MostSpecificHostMatch), if any. */
  match(hostname: string): readonly Entry[] | undefined {
    const exact = this.exact.get(hostname);
    if (exact) return exact;
    if (this.wildcard.size === 0) return undefined;
    this.wildcardHosts ??= [...this.wildcard.keys()].sort((a, b) => b.length - a.length);
    const h = this.wildcardHosts.find((w) => hostMatches(w, hostname));
    return h === undefined ? undefined : this.wildcard.get(h);
  }
}

const exportToOf = (dr: ConfigEntry): readonly string[] => (dr.spec.exportTo ?? []) as string[];
const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const x = new Set(a), y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
};

/** `into` with `dr` merged in (mergeDestinationRule): a new entry, neither rule is changed. */
function merged(into: ConfigEntry, dr: ConfigEntry): ConfigEntry {
  const names = new Set(((into.spec.subsets ?? []) as any[]).map((s) => s.name));
  const subsets = [...((into.spec.subsets ?? []) as any[]), ...((dr.spec.subsets ?? []) as any[]).filter((s) => !names.has(s.name))];
  const spec = { ...into.spec, subsets };
  if (spec.trafficPolicy === undefined && dr.spec.trafficPolicy !== undefined) spec.trafficPolicy = dr.spec.trafficPolicy;
  if (subsets.length === 0) delete spec.subsets;
  // The merged rule's version moves with either rule: cache keys read it.
  return { ...into, spec, version: `${into.version}+${dr.version}` };
}

export interface DestinationRuleIndex {
  /** The rule a proxy in `proxyNamespace` applies to `hostname`, a service of `serviceNamespace`. */
  lookup(hostname: string, proxyNamespace: string, serviceNamespace: string | undefined): ConfigEntry | undefined;
}

/** The index of a rule list (memoised on the list: a context rebuilt without DestinationRule changes keeps it). */
const indexes = new WeakMap<readonly ConfigEntry[], { settings: string; ix: DestinationRuleIndex }>();

export function destinationRuleIndex(rules: readonly ConfigEntry[], rootNamespace: string, qualify: (host: string, namespace: string) => string, domainSuffix: string): DestinationRuleIndex {
  const settings = `${rootNamespace}|${domainSuffix}`;
  const m = indexes.get(rules);
  if (m && m.settings === settings) return m.ix;
  const ix = build(rules, rootNamespace, qualify);
  indexes.set(rules, { settings, ix });
  return ix;
}

function build(rules: readonly ConfigEntry[], root: string, qualify: (host: string, namespace: string) => string): DestinationRuleIndex {
  const local = new Map<string, Pool>(), exported = new Map<string, Pool>();
  const rootLocal = new Pool();
  const pool = (m: Map<string, Pool>, ns: string): Pool => { let p = m.get(ns); if (!p) m.set(ns, (p = new Pool())); return p; };
  for (const dr of [...rules].sort(byCreation)) {
    const host = qualify(String(dr.spec.host ?? ''), dr.namespace);
    const ex = exportToOf(dr);
    if (ex.length === 0 || ex.some((e) => e === '*' || e === '.' || e === dr.namespace)) pool(local, dr.namespace).add(host, dr);
    const privateOnly = new Set(ex).size === 1 && (ex[0] === '.' || ex[0] === dr.namespace);
    if (!privateOnly) pool(exported, dr.namespace).add(host, dr);
    else if (dr.namespace === root) rootLocal.add(host, dr);
  }
  const last = (entries: readonly Entry[]): ConfigEntry => entries[entries.length - 1]!.rule;
  return {
    lookup(hostname, proxyNs, svcNs) {
      const own = proxyNs === root ? rootLocal.match(hostname) : local.get(proxyNs)?.match(hostname);
      if (own) return last(own);
      for (const ns of [svcNs, root]) {
        const entries = ns === undefined ? undefined : exported.get(ns)?.match(hostname);
        const visible = entries?.filter((e) => exportedEverywhere(e.exportTo) || e.exportTo.includes(proxyNs));
        if (visible?.length) return last(visible);
      }
      return undefined;
    },
  };
}
