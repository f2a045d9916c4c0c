/** Test helper: one plain HTTP GET against a loopback port (a fresh connection each time), and polling until a probe passes. */
import http from 'node:http';

export interface Reply { status: number; body: string }

/** GET `urlPath` from 127.0.0.1:port with the given Host header; rejects on connection errors and after 3 s. */
export function httpGet(port: number, host: string, urlPath = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers: { host }, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/** Polls `probe` every 150 ms until `ok` accepts its value; the error names `what` and the last value or error. */
export async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try { const v = await probe(); last = v; if (ok(v)) return v; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
