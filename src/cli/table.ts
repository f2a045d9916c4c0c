/**
 * Tables as istioctl prints them (Go's text/tabwriter with minwidth 0, padding 5 for proxy-status and 2 for
 * proxy-config): every column but the last is padded to its widest cell plus the padding.
 */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>, padding = 2): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + padding))).join('').trimEnd()).join('\n') + '\n';
}

/** GET a JSON document from the server's monitoring port; errors name the URL and the server's answer. */
export async function fetchJson(server: string, path: string): Promise<unknown> {
  const url = `http://${server}${path}`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot reach meshpilot at ${server} (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}); is --server the monitoring address?`);
  }
  const body = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${body.trim()}`);
  return JSON.parse(body) as unknown;
}

export const DEFAULT_SERVER = 'localhost:15014';
