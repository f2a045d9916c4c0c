/**
 * `meshpilot proxy-status [PROXY]`: the sync state of every connected proxy, read from /debug/syncz on the
 * monitoring port and printed as `istioctl proxy-status` prints it (SYNCED, NOT SENT, STALE).
 */
import { Command } from 'commander';
import { DEFAULT_SERVER, fetchJson, formatTable } from './table.js';
import { xdsStatusText, type SyncStatus } from '../monitoring/sync-status.js';

const COLUMNS = [['CDS', 'cluster'], ['LDS', 'listener'], ['EDS', 'endpoint'], ['RDS', 'route']] as const;

export function proxyStatusTable(statuses: readonly SyncStatus[], server: string, filter?: string): string {
  const rows = [...statuses]
    .filter((s) => !filter || s.proxy.includes(filter))
    .sort((a, b) => a.proxy.localeCompare(b.proxy))
    .map((s) => {
      const rec = s as unknown as Record<string, string | undefined>;
      return [
        s.proxy, s.cluster_id ?? '',
        ...COLUMNS.map(([, p]) => xdsStatusText(rec[`${p}_sent`], rec[`${p}_acked`])),
        server, s.istio_version || (s.proxy_version ? `${s.proxy_version}*` : ''),
      ];
    });
  return formatTable(['NAME', 'CLUSTER', ...COLUMNS.map(([c]) => c), 'ISTIOD', 'VERSION'], rows, 5);
}

export function proxyStatusCommand(): Command {
  return new Command('proxy-status')
    .description('Show the xDS sync state (SYNCED / NOT SENT / STALE) of every connected proxy')
    .argument('[proxy]', 'only proxies whose ID contains this')
    .option('--server <host:port>', 'meshpilot monitoring address', DEFAULT_SERVER)
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (proxy: string | undefined, o: { server: string; output: string }) => {
      const statuses = await fetchJson(o.server, '/debug/syncz') as SyncStatus[];
      if (o.output === 'json') {
        process.stdout.write(`${JSON.stringify(statuses.filter((s) => !proxy || s.proxy.includes(proxy)), null, 2)}\n`);
        return;
      }
      if (o.output !== 'table') throw new Error(`--output ${o.output}: expected table or json`);
      process.stdout.write(proxyStatusTable(statuses, o.server, proxy));
    });
}
