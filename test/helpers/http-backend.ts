import http from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface HttpBackend {
  /** Port on 127.0.0.1 the backend listens on. */
  port: number;
  /** Number of requests answered so far (live). */
  hits: number;
  /** Every request received, in order (live array). */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * Starts an HTTP/1.1 backend on 127.0.0.1:<random> that answers every request
 * with 200, body `name` and header `x-backend: name`, recording each request.
 */
export async function startHttpBackend(name: string): Promise<HttpBackend> {
  const backend: HttpBackend = {
    port: 0,
    hits: 0,
    requests: [],
    close: async () => {},
  };

  const server = http.createServer((req, res) => {
    // Drain the body (if any) before answering so keep-alive works.
    req.resume();
    req.on("end", () => {
      backend.hits++;
      backend.requests.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: { ...req.headers },
      });
      const body = Buffer.from(name, "utf8");
      res.writeHead(200, {
        "content-type": "text/plain",
        "content-length": body.length,
        "x-backend": name,
      });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  backend.port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  backend.close = () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };
  return backend;
}
