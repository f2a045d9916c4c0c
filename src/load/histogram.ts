/** Latency histograms (hdr-histogram-js, microsecond resolution) and their summary in milliseconds. */
import * as hdr from 'hdr-histogram-js';

export interface LatencySummary { count: number; p50: number; p90: number; p99: number; max: number; mean: number }

export class LatencyHistogram {
  private readonly h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });

  recordMs(ms: number): void { this.h.recordValue(Math.max(1, Math.round(ms * 1000))); }

  merge(other: LatencyHistogram): void { this.h.add(other.h); }

  summary(): LatencySummary {
    // hdr reports the highest value equivalent to a percentile's bucket, which may exceed the true maximum.
    const ms = (us: number): number => Math.round(Math.min(us, this.h.maxValue)) / 1000;
    if (this.h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
    return {
      count: this.h.totalCount,
      p50: ms(this.h.getValueAtPercentile(50)),
      p90: ms(this.h.getValueAtPercentile(90)),
      p99: ms(this.h.getValueAtPercentile(99)),
      max: ms(this.h.maxValue),
      mean: ms(this.h.mean),
    };
  }

  /** [valueMs, percentile] points for plotting a distribution. */
  percentiles(points = [0, 10, 25, 50, 75, 90, 95, 99, 99.9, 100]): Array<[number, number]> {
    if (this.h.totalCount === 0) return [];
    return points.map((p) => [Math.min(this.h.getValueAtPercentile(p), this.h.maxValue) / 1000, p]);
  }
}
