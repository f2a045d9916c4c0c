/**
 * Metrics on the per-response path (every DiscoveryResponse sent: 20,000 in a 5,000-proxy connect storm). prom-client's
 * Counter.inc and Histogram.observe validate and hash their labels on every call (~1–2 µs each, three per response);
 * these keep plain per-series numbers and are rendered by the same prom-client registry, in the same text format
 * (registerMetric takes any object with name, help, type and get()).
 */
import type { Registry } from 'prom-client';

interface Series { labels: Record<string, string>; value: number }
interface HistogramSeries { labels: Record<string, string>; counts: Float64Array; sum: number; count: number }

/** One metric value line as prom-client's registry renders it. */
interface MetricValue { labels: Record<string, string | number>; value: number; metricName?: string }

/** A counter with at most one label whose values are few (e.g. the xDS type). */
export class FastCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, Series>();

  constructor(readonly name: string, readonly help: string, registry: Registry, private readonly labelName?: string) {
    registry.registerMetric(this as never);
    if (!labelName) this.inc('', 0); // as prom-client: an unlabelled counter shows 0 before its first increment
  }

  inc(labelValue = '', by = 1): void {
    let s = this.series.get(labelValue);
    if (!s) this.series.set(labelValue, (s = { labels: this.labelName ? { [this.labelName]: labelValue } : {}, value: 0 }));
    s.value += by;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value })) };
  }

  reset(): void {
    this.series.clear();
    if (!this.labelName) this.inc('', 0);
  }
}

/** A histogram with at most one label whose values are few; buckets as prom-client's (upper bounds, inclusive). */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();

  constructor(readonly name: string, readonly help: string, private readonly buckets: readonly number[], registry: Registry, private readonly labelName?: string) {
    registry.registerMetric(this as never);
    if (!labelName) this.seriesFor(''); // as prom-client: an unlabelled histogram shows its empty buckets from the start
  }

  private seriesFor(labelValue: string): HistogramSeries {
    let s = this.series.get(labelValue);
    if (!s) {
      s = { labels: this.labelName ? { [this.labelName]: labelValue } : {}, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
      this.series.set(labelValue, s);
    }
    return s;
  }

  observe(value: number, labelValue = ''): void {
    const s = this.seriesFor(labelValue);
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    if (i < b.length) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
    if (!this.labelName) this.seriesFor('');
  }
}
