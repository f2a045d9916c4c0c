/**
 * Which DestinationRule a proxy applies to a service (istio pilot/pkg/model/push_context.go setDestinationRules,
 * destinationRule, getExportedDestinationRuleFromNamespace; destination_rule.go mergeDestinationRule; sidecar.go
 * SidecarScope.DestinationRule).
 *
 * The rules are indexed once per rule list — those with a workloadSelector first, each group oldest first
 * (sortConfigBySelectorAndCreationTime) — in three pools:
 * - by namespace, the rules that namespace sees of its own (no exportTo, `*`, `.` or the namespace itself);
 * - by namespace, the rules exported beyond it (all but those exported to `.` or to their own namespace only);
 * - the root namespace's private ones.
 * A rule with a workloadSelector is private to its namespace whatever its exportTo says (istiod replaces its
 * exportTo with `.`): it only ever applies to proxies of its own namespace whose labels it selects.
 * Within a pool, the entries for one host are built as mergeDestinationRule does (ENABLE_ENHANCED_DESTINATIONRULE_MERGE,
 * istiod's default): a rule is compared with each entry so far; with the same exportTo it is merged into that
 * entry (subsets concatenated, the first one of a name wins; the first top-level trafficPolicy is kept) unless
 * both have workloadSelectors that differ, and it stays an entry of its own unless it had the same exportTo and
 * the same selector (or none on either side) as the last entry it was compared with; with an exportTo that is a
 * superset of a non-empty entry's it is merged into that entry and stays an entry of its own too; otherwise it is
 * an entry of its own. So a selector-less rule exported to `.` also fills in the subsets and policy a selector
 * rule for the same host lacks.
 *
 * A proxy in namespace P looking at a service of namespace S takes, from the first step that has a match for the
 * host (the exact host before the longest matching wildcard, MostSpecificHostMatch):
 * 1. P's own pool (for a proxy in the root namespace: the root's private rules);
 * 2. S's exported pool, keeping the entries exported to P (none: on to the next step);
 * 3. the root namespace's exported pool, likewise;
 * and no rule otherwise: a rule in any other namespace never applies. Of the step's entries (SidecarScope.
 * DestinationRule), the first one with a workloadSelector of P's namespace that the proxy's labels match wins,
 * else the last one without a workloadSelector, else none — step 1 matching the host only through selector rules
 * that do not select the proxy gives no rule at all, it does not go on to step 2.
 */
import { byCreation } from './service.js';
import { exportedEverywhere, hostMatches, selectorMatches, type ConfigEntry } from './push-context.js';

interface Entry {
  rule: ConfigEntry;
  exportTo: readonly string[];
  /** spec.workloadSelector.matchLabels when the rule has a workloadSelector (`{}` when it has one without labels). */
  selector?: Record<string, string>;
}

/** A rule's workloadSelector labels, or undefined when it has none (istiod: GetWorkloadSelector() == nil). */
function selectorOf(dr: ConfigEntry): Record<string, string> | undefined {
  const ws = dr.spec.workloadSelector;
  return ws === undefined || ws === null ? undefined : ((ws.matchLabels ?? {}) as Record<string, string>);
}

const sameLabels = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
};

/** One pool: entries by exact host, and wildcard hosts longest first. */
class Pool {
  private readonly exact = new Map<string, Entry[]>();
  private readonly wildcard = new Map<string, Entry[]>();
  private wildcardHosts: string[] | undefined;

  /** mergeDestinationRule: `exportTo` is the rule's effective one (`.` for a rule with a workloadSelector). */
  add(host: string, dr: ConfigEntry, exportTo: readonly string[]): void {
    const byHost = host.startsWith('*') ? this.wildcard : this.exact;
    const selector = selectorOf(dr);
    const entry: Entry = selector ? { rule: dr, exportTo, selector } : { rule: dr, exportTo };
    const entries = byHost.get(host);
    if (!entries) { byHost.set(host, [entry]); this.wildcardHosts = undefined; return; }
    let appendSeparately = true;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const bothWithout = !selector && !e.selector;
      const bothWith = selector !== undefined && e.selector !== undefined;
      const selectorsMatch = bothWith && sameLabels(selector, e.selector!);
      if (sameSet(e.exportTo, exportTo)) appendSeparately = !(bothWithout || selectorsMatch);
      else if (e.exportTo.length > 0 && superset(exportTo, e.exportTo)) appendSeparately = true;
      else { appendSeparately = true; continue; }
      if (bothWith && !selectorsMatch) { appendSeparately = true; continue; }
      entries[i] = { ...e, rule: merged(e.rule, dr) };
    }
    if (appendSeparately) entries.push(entry);
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

/** The exportTo a rule is indexed with: a rule with a workloadSelector is private (`.`), whatever it says. */
const exportToOf = (dr: ConfigEntry): readonly string[] => (selectorOf(dr) ? ['.'] : (dr.spec.exportTo ?? []) as string[]);
const superset = (a: readonly string[], b: readonly string[]): boolean => b.every((v) => a.includes(v));
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
  /**
   * The rule a proxy in `proxyNamespace` with labels `proxyLabels` applies to `hostname`, a service of
   * `serviceNamespace` (outbound traffic; the labels only matter to rules with a workloadSelector).
   */
  lookup(hostname: string, proxyNamespace: string, serviceNamespace: string | undefined, proxyLabels?: Record<string, string>): ConfigEntry | undefined;
  /**
   * By namespace, the label keys its rules' workloadSelectors read, sorted (absent: no rule there has one). Only
   * proxies of that namespace can be selected by them, so only these labels of theirs decide their rules.
   */
  readonly selectorKeys: ReadonlyMap<string, readonly string[]>;
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

/** sortConfigBySelectorAndCreationTime: rules with a workloadSelector first, then by creation (byCreation). */
function bySelectorAndCreation(a: ConfigEntry, b: ConfigEntry): number {
  const sa = selectorOf(a) !== undefined, sb = selectorOf(b) !== undefined;
  return sa !== sb ? (sa ? -1 : 1) : byCreation(a, b);
}

const NO_LABELS: Record<string, string> = {};

function build(rules: readonly ConfigEntry[], root: string, qualify: (host: string, namespace: string) => string): DestinationRuleIndex {
  const local = new Map<string, Pool>(), exported = new Map<string, Pool>();
  const rootLocal = new Pool();
  const pool = (m: Map<string, Pool>, ns: string): Pool => { let p = m.get(ns); if (!p) m.set(ns, (p = new Pool())); return p; };
  const keysByNs = new Map<string, Set<string>>();
  for (const dr of [...rules].sort(bySelectorAndCreation)) {
    const host = qualify(String(dr.spec.host ?? ''), dr.namespace);
    const ex = exportToOf(dr);
    const selector = selectorOf(dr);
    if (selector) {
      let keys = keysByNs.get(dr.namespace);
      if (!keys) keysByNs.set(dr.namespace, (keys = new Set()));
      for (const k of Object.keys(selector)) keys.add(k);
    }
    if (ex.length === 0 || ex.some((e) => e === '*' || e === '.' || e === dr.namespace)) pool(local, dr.namespace).add(host, dr, ex);
    const privateOnly = new Set(ex).size === 1 && (ex[0] === '.' || ex[0] === dr.namespace);
    if (!privateOnly) pool(exported, dr.namespace).add(host, dr, ex);
    else if (dr.namespace === root) rootLocal.add(host, dr, ex);
  }
  const selectorKeys = new Map<string, readonly string[]>();
  for (const [ns, keys] of keysByNs) if (keys.size > 0) selectorKeys.set(ns, [...keys].sort());
  /** SidecarScope.DestinationRule: the first selector rule of the proxy's namespace selecting it, else the last catch-all. */
  const choose = (entries: readonly Entry[], proxyNs: string, labels: Record<string, string>): ConfigEntry | undefined => {
    let catchAll: ConfigEntry | undefined;
    for (const e of entries) {
      if (!e.selector) catchAll = e.rule;
      else if (e.rule.namespace === proxyNs && selectorMatches(e.selector, labels)) return e.rule;
    }
    return catchAll;
  };
  return {
    selectorKeys,
    lookup(hostname, proxyNs, svcNs, proxyLabels = NO_LABELS) {
      const own = proxyNs === root ? rootLocal.match(hostname) : local.get(proxyNs)?.match(hostname);
      if (own) return choose(own, proxyNs, proxyLabels);
      for (const ns of [svcNs, root]) {
        const entries = ns === undefined ? undefined : exported.get(ns)?.match(hostname);
        const visible = entries?.filter((e) => exportedEverywhere(e.exportTo) || e.exportTo.includes(proxyNs));
        if (visible?.length) return choose(visible, proxyNs, proxyLabels);
      }
      return undefined;
    },
  };
}
