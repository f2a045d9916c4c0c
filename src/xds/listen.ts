/**
 * Listening for a grpc-js server with the kernel's full accept backlog. grpc-js binds with Node's default backlog
 * (511); in a connect storm a main thread busy answering the first proxies then lets the accept queue overflow, the
 * kernel drops the SYNs of the next ones and each of those proxies waits out a SYN retransmit (1 s, then 3 s): at
 * 5,000 proxies ~900 such drops per storm were counted (nstat TcpExtListenOverflows). Go servers such as istiod
 * listen with the system's somaxconn; so does this, through grpc-js's public connection injector.
 */
import fs from 'node:fs';
import net from 'node:net';
import type * as grpc from '@grpc/grpc-js';

/** net.core.somaxconn (Linux), else 4096. */
export function systemBacklog(): number {
  try {
    const n = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 4096;
  } catch {
    return 4096;
  }
}

export interface GrpcListener {
  port: number;
  close(): void;
}

/** Serve `server` on host:port (port 0: any), accepting with the system backlog. */
export function listenGrpc(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials): Promise<GrpcListener> {
  const injector = server.createConnectionInjector(credentials);
  const listener = net.createServer({ noDelay: true }, (socket) => injector.injectConnection(socket));
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ host, port, backlog: systemBacklog() }, () => {
      listener.off('error', reject);
      const addr = listener.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : port,
        close: () => { listener.close(); injector.destroy(); },
      });
    });
  });
}
