import net from 'node:net';

/**
 * A TCP proxy in front of the test Postgres that can play the outages a real server has: refusing connections
 * (reset), starting up (57P03 on connect), shutting down (57P01 to open connections, 57P03 to new ones), dropping
 * sockets mid-session, and not answering at all.
 */
export type ProxyMode = 'pass' | 'reset' | 'starting' | 'shutdown' | 'drop' | 'hang';

const field = (code: string, value: string) => Buffer.concat([Buffer.from(code), Buffer.from(value), Buffer.from([0])]);

/** A Postgres ErrorResponse message, as the server sends it before closing. */
export function pgErrorMessage(sqlState: string, message: string): Buffer {
  const body = Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', sqlState), field('M', message), Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

export class PgProxy {
  private server = net.createServer((c) => this.accept(c));
  private readonly open = new Set<{ client: net.Socket; upstream?: net.Socket }>();
  mode: ProxyMode = 'pass';
  port = 0;

  constructor(private readonly target = { host: '127.0.0.1', port: 5432 }) {}

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** The same URL through the proxy. */
  url(databaseUrl: string): string {
    const u = new URL(databaseUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Switches the outage on (or off with 'pass'); open sessions meet it at once where the mode says so. */
  set(mode: ProxyMode): void {
    this.mode = mode;
    for (const pair of [...this.open]) {
      if (mode === 'shutdown') {
        pair.client.end(pgErrorMessage('57P01', 'terminating connection due to administrator command'));
        pair.upstream?.destroy();
        this.open.delete(pair);
      } else if (mode !== 'pass') {
        this.close(pair);
      }
    }
  }

  private close(pair: { client: net.Socket; upstream?: net.Socket }): void {
    pair.client.destroy();
    pair.upstream?.destroy();
    this.open.delete(pair);
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    const pair: { client: net.Socket; upstream?: net.Socket } = { client };
    this.open.add(pair);
    client.on('close', () => this.close(pair));
    switch (this.mode) {
      case 'reset':
        client.resetAndDestroy();
        return;
      case 'drop':
        client.destroy();
        return;
      case 'hang':
        return;
      case 'starting':
      case 'shutdown':
        client.once('data', () =>
          client.end(
            pgErrorMessage(
              '57P03',
              this.mode === 'starting' ? 'the database system is starting up' : 'the database system is shutting down',
            ),
          ),
        );
        return;
      case 'pass': {
        const upstream = net.connect(this.target.port, this.target.host);
        pair.upstream = upstream;
        upstream.on('error', () => this.close(pair));
        upstream.on('close', () => this.close(pair));
        client.pipe(upstream).pipe(client);
      }
    }
  }

  async stop(): Promise<void> {
    for (const pair of [...this.open]) this.close(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
