/**
 * HTTP/2 sessions for the simulated proxies: `streamsPerConn` ADS streams share one connection (1 = one
 * connection per proxy, how real sidecars connect; 100 makes a cheap harness). Windows are opened wide so flow
 * control never throttles a large push; the server's own limits are what is measured.
 */
import http2 from 'node:http2';

const WINDOW = 64 * 1024 * 1024;

export class Http2Pool {
  private readonly sessions: Array<http2.ClientHttp2Session | undefined> = [];
  errors = 0;
  /** Sessions whose handshake has not completed. */
  connecting = 0;

  constructor(private readonly target: string, readonly streamsPerConn: number) {
    if (!Number.isInteger(streamsPerConn) || streamsPerConn < 1) throw new Error(`streams per connection must be a positive integer, got ${streamsPerConn}`);
  }

  get connections(): number { return this.sessions.filter((s) => s !== undefined).length; }

  sessionFor(proxyIndex: number): http2.ClientHttp2Session {
    const k = Math.floor(proxyIndex / this.streamsPerConn);
    let s = this.sessions[k];
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(`http://${this.target}`, {
        settings: { initialWindowSize: WINDOW, enablePush: false },
        peerMaxConcurrentStreams: 1_000_000,
        maxSessionMemory: 1024,
      });
      this.connecting++;
      let pending = true;
      const settled = (): void => { if (pending) { pending = false; this.connecting--; } };
      s.on('connect', (sess: http2.ClientHttp2Session) => { settled(); sess.setLocalWindowSize(WINDOW * 4); });
      s.on('error', () => { settled(); this.errors++; });
      s.on('close', settled);
      this.sessions[k] = s;
    }
    return s;
  }

  close(): void {
    for (const s of this.sessions) s?.close();
    for (const s of this.sessions) s?.destroy();
    this.sessions.length = 0;
  }
}
