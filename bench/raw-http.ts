import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * The decide-http load generator's HTTP, as lean as Node allows: pgbench's clients are C and cost its server next to
 * nothing, while node:http's client and a recording fake Slack cost this 2-core machine about 0.6 ms of CPU per
 * decision, taken from the server and Postgres being measured. The server sees the same requests either way.
 */

/**
 * One kept-alive HTTP/1.1 connection, one request at a time: the request's bytes are written as they are, and of the
 * answer only the status line, Content-Length or chunked framing, and the end are read.
 */
export class RawConnection {
  private socket?: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private waiting?: { resolve: (status: number) => void; reject: (e: Error) => void };

  constructor(private readonly url: URL) {}

  post(path: string, headers: Record<string, string>, body: string): Promise<number> {
    const payload = Buffer.from(body);
    let head = `POST ${path} HTTP/1.1\r\nhost: ${this.url.host}\r\ncontent-length: ${payload.length}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    const bytes = Buffer.concat([Buffer.from(`${head}\r\n`), payload]);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.connected().write(bytes);
    });
  }

  close(): void {
    this.socket?.destroy();
  }

  private connected(): net.Socket {
    if (this.socket && !this.socket.destroyed) return this.socket;
    this.buf = Buffer.alloc(0);
    const s = net.connect(Number(this.url.port), this.url.hostname);
    s.setNoDelay(true);
    s.on('data', (c: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      this.parse();
    });
    const fail = (e: Error) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(e);
    };
    s.on('error', fail);
    s.on('close', () => fail(new Error('connection closed')));
    this.socket = s;
    return s;
  }

  /** Completes the request in flight once its whole answer is in. */
  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.waiting) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    let total: number;
    if (length) total = end + 4 + Number(length[1]);
    else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const last = this.buf.indexOf('\r\n0\r\n\r\n', end);
      if (last < 0) return;
      total = last + 7;
    } else total = end + 4;
    if (this.buf.length < total) return;
    this.buf = this.buf.subarray(total);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve(status);
  }
}

/**
 * What stands in for Slack's Web API and response_url endpoints in the benchmark: an answer like Slack's to each
 * call, nothing recorded (the tests' FakeSlackApi keeps every call for its assertions).
 */
export async function startSlackStandIn(): Promise<{ url: string; origin: string }> {
  let seq = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const method = req.url?.startsWith('/api/') ? req.url.slice(5) : 'response_url';
      const body =
        method === 'chat.postEphemeral'
          ? `{"ok":true,"message_ts":"1767600000.${String(++seq).padStart(6, '0')}"}`
          : method === 'conversations.open'
            ? '{"ok":true,"channel":{"id":"D0BENCH"}}'
            : '{"ok":true}';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: `${origin}/api/`, origin };
}
