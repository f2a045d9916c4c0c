/** CPU and memory of a process (the server under test) from /proc, and of this one. Linux only. */
import fs from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on every Linux the project runs on

export interface ProcSample { cpuMs: number; rssBytes: number; at: number }

export function sampleProcess(pid: number): ProcSample | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: fields are counted after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND, rssBytes: m ? Number(m[1]) * 1024 : 0, at: performance.now() };
  } catch {
    return undefined;
  }
}

export function sampleSelf(): ProcSample {
  const u = process.cpuUsage();
  return { cpuMs: (u.user + u.system) / 1000, rssBytes: process.memoryUsage.rss(), at: performance.now() };
}

/** CPU use between two samples as a percentage of one core. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  const wall = b.at - a.at;
  return wall > 0 ? (100 * (b.cpuMs - a.cpuMs)) / wall : 0;
}
