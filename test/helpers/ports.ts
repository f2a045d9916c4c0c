import net from "node:net";

/**
 * Kernel-assigned ports (bind to :0) come from the ephemeral range (32768–60999 here), which is also where every
 * outgoing connection's local port comes from: a port handed to a config file and bound seconds later by Envoy can
 * meanwhile be taken by some connection in a parallel test ("cannot bind: Address already in use"). So ports are
 * drawn below that range and checked free on all addresses; there is still a race between checking and the caller
 * binding, but no longer with the machine's own outgoing connections.
 */
const LOW = 20_000;
const HIGH = 32_000;

function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", () => resolve(undefined));
    srv.listen({ host: "0.0.0.0", port, exclusive: true }, () => {
      const addr = srv.address();
      const got = addr !== null && typeof addr !== "string" ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/** Returns a TCP port that was free on every address a moment ago; prefer letting servers bind :0 themselves when possible. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await tryBind(LOW + Math.floor(Math.random() * (HIGH - LOW)));
    if (p !== undefined) return p;
  }
  const p = await tryBind(0);
  if (p === undefined) throw new Error("freePort: no free port");
  return p;
}
