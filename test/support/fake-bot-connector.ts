import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An in-process stand-in for the Bot Connector service (the `serviceUrl` Teams gives a bot). Records every
 * call and can be told to fail the next matching calls with 404 or 429 (+ Retry-After).
 */
export interface RecordedCall {
  method: 'POST' | 'PUT';
  kind: 'create' | 'send' | 'reply' | 'update';
  conversationId: string;
  activityId?: string;
  body: any;
  authorization?: string;
  /** the id the fake answered with */
  id?: string;
  status: number;
  /** when the call arrived (ms) */
  at: number;
}

interface Failure {
  kind?: RecordedCall['kind'];
  status: number;
  retryAfter?: string;
  times: number;
}

export class FakeBotConnector {
  readonly calls: RecordedCall[] = [];
  private server!: Server;
  private failures: Failure[] = [];
  private seq = 0;
  /** activities that exist, per conversation, so updates of unknown ids can 404 like Teams */
  private readonly known = new Set<string>();
  strictUpdates = false;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.route(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  /** The next `times` calls (of `kind`, if given) answer `status`. */
  failNext(f: { kind?: RecordedCall['kind']; status: number; retryAfter?: string; times?: number }): void {
    this.failures.push({ ...f, times: f.times ?? 1 });
  }

  forget(conversationId: string, activityId: string): void {
    this.known.delete(`${conversationId}|${activityId}`);
  }

  reset(): void {
    this.calls.length = 0;
    this.failures = [];
  }

  /** Successful calls of the given kinds, in order. */
  of(...kinds: RecordedCall['kind'][]): RecordedCall[] {
    return this.calls.filter((c) => kinds.includes(c.kind) && c.status < 300);
  }

  /** New messages, whether sent to the conversation or as a reply to the activity being answered. */
  posted(): RecordedCall[] {
    return this.of('send', 'reply');
  }

  private async route(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body = text ? JSON.parse(text) : undefined;
    const path = decodeURI(new URL(req.url!, 'http://x').pathname);
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    // v3 conversations [id] activities [activityId]
    let kind: RecordedCall['kind'] | undefined;
    if (req.method === 'POST' && parts.length === 2) kind = 'create';
    else if (req.method === 'POST' && parts.length === 4) kind = 'send';
    else if (req.method === 'POST' && parts.length === 5) kind = 'reply';
    else if (req.method === 'PUT' && parts.length === 5) kind = 'update';
    if (!kind || parts[0] !== 'v3' || parts[1] !== 'conversations') {
      res.writeHead(404).end();
      return;
    }
    const conversationId = parts[2] ?? '';
    const activityId = parts[4];
    const call: RecordedCall = {
      method: req.method as 'POST' | 'PUT',
      kind,
      conversationId,
      activityId,
      body,
      authorization: req.headers.authorization,
      status: 200,
      at: Date.now(),
    };
    this.calls.push(call);

    const failure = this.failures.find((f) => f.times > 0 && (!f.kind || f.kind === kind));
    if (failure) {
      failure.times--;
      call.status = failure.status;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (failure.retryAfter) headers['retry-after'] = failure.retryAfter;
      res.writeHead(failure.status, headers).end(
        JSON.stringify({
          error: { code: failure.status === 404 ? 'ActivityNotFoundInConversation' : 'TooManyRequests', message: 'fake failure' },
        }),
      );
      return;
    }
    if (kind === 'update' && this.strictUpdates && !this.known.has(`${conversationId}|${activityId}`)) {
      call.status = 404;
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'ActivityNotFoundInConversation', message: 'activity not found' } }));
      return;
    }
    const id = kind === 'update' ? activityId! : kind === 'create' ? `a:conv-${++this.seq}` : `act-${++this.seq}`;
    call.id = id;
    if (kind === 'send' || kind === 'reply') this.known.add(`${conversationId}|${id}`);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify(kind === 'create' ? { id, activityId: undefined } : { id }));
  }
}
