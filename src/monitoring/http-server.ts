/** The monitoring port (istiod's 15014): readiness now; metrics and debug endpoints arrive with observability. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;

export class MonitoringServer {
  private readonly server: http.Server;
  private readonly routes = new Map<string, Handler>();

  constructor() {
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const h = this.routes.get(url.pathname);
      if (!h) { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'); return; }
      Promise.resolve(h(req, res, url)).catch((e) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`error: ${(e as Error).message}\n`);
      });
    });
  }

  route(path: string, h: Handler): void { this.routes.set(path, h); }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
