import net from "node:net";

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to :0, read
 * the port, close). There is an unavoidable race between closing and the
 * caller binding it; prefer letting servers bind :0 themselves when possible.
 */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error(`freePort: unexpected address ${String(addr)}`));
        return;
      }
      const port = addr.port;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
