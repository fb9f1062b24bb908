import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { HANG_LIMIT_MS } from './wait.ts';

/** One recorded Web API call, with form fields JSON-decoded where they hold JSON (blocks, view). */
export interface SlackCall {
  method: string;
  args: Record<string, any>;
  token: string | null;
  /** what the fake answered when it succeeded (e.g. the ts of a posted message) */
  result?: Record<string, unknown>;
}

type Scripted = (
  | { kind: 'error'; error: string }
  | { kind: 'ratelimit'; retryAfter: number }
  | { kind: 'status'; status: number }
  | { kind: 'hold'; gate: Promise<void> }
) & { match?: (args: Record<string, any>) => boolean };

/**
 * An in-process stand-in for the Slack Web API on 127.0.0.1:0. It records what Signoff sends, answers like
 * Slack (ok/ts/channel/view ids) and can be told to fail, rate-limit or stall the next calls of a method.
 */
export class FakeSlackApi {
  readonly calls: SlackCall[] = [];
  private server?: Server;
  private readonly scripted = new Map<string, Scripted[]>();
  private readonly events = new EventEmitter();
  private seq = 0;
  url = '';
  origin = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.origin = `http://127.0.0.1:${port}`;
    this.url = `${this.origin}/api/`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The next `times` calls of `method` answer `{ ok: false, error }`. */
  failNext(method: string, error: string, times = 1, match?: (args: Record<string, any>) => boolean): void {
    for (let i = 0; i < times; i++) this.push(method, { kind: 'error', error, match });
  }
  rateLimitNext(method: string, retryAfterSeconds: number, times = 1): void {
    for (let i = 0; i < times; i++) this.push(method, { kind: 'ratelimit', retryAfter: retryAfterSeconds });
  }
  statusNext(method: string, status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.push(method, { kind: 'status', status });
  }
  /** Stalls the next call of `method` until `release()`; the call is recorded when it arrives. */
  holdNext(method: string): { release(): void } {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    this.push(method, { kind: 'hold', gate });
    return { release };
  }
  private push(method: string, s: Scripted) {
    this.scripted.set(method, [...(this.scripted.get(method) ?? []), s]);
  }

  of(method: string): SlackCall[] {
    return this.calls.filter((c) => c.method === method);
  }
  last(method: string): SlackCall | undefined {
    return this.of(method).at(-1);
  }
  reset(): void {
    this.calls.length = 0;
    this.scripted.clear();
  }

  /** Resolves once `count` calls of `method` have arrived (event-driven, no polling); the limit only detects a hang. */
  waitFor(method: string, count = 1, timeoutMs = HANG_LIMIT_MS): Promise<SlackCall[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const got = this.of(method);
        if (got.length >= count) {
          cleanup();
          resolve(got);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `hung: waited ${timeoutMs / 1000} s for ${count} × ${method}; got ${this.of(method).length}: ${this.calls.map((c) => c.method).join(', ')}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.events.off('call', check);
      };
      this.events.on('call', check);
      check();
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (url.pathname.startsWith('/response/')) {
      this.record({ method: 'response_url', args: { ...JSON.parse(raw || '{}'), _path: url.pathname }, token: null });
      return json(200, { ok: true });
    }
    const method = url.pathname.replace(/^\/api\//, '');
    const args = parseArgs(req.headers['content-type'] ?? '', raw);
    const auth = req.headers.authorization ?? null;
    const call: SlackCall = { method, args, token: auth ? auth.replace(/^Bearer /, '') : (args.token ?? null) };
    const queue = this.scripted.get(method) ?? [];
    const at = queue.findIndex((x) => !x.match || x.match(args));
    const script = at >= 0 ? queue.splice(at, 1)[0] : undefined;
    this.record(call);
    if (script?.kind === 'hold') await script.gate;
    if (script?.kind === 'error') return json(200, { ok: false, error: script.error });
    if (script?.kind === 'ratelimit') return json(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(script.retryAfter) });
    if (script?.kind === 'status') return json(script.status, { ok: false, error: 'fake_status' });
    call.result = this.answer(method, args);
    json(200, call.result);
  }

  private record(call: SlackCall) {
    this.calls.push(call);
    this.events.emit('call');
  }

  private answer(method: string, args: Record<string, any>): Record<string, unknown> {
    const ts = () => `1767600000.${String(++this.seq).padStart(6, '0')}`;
    switch (method) {
      case 'chat.postMessage': {
        const t = ts();
        return { ok: true, channel: args.channel, ts: t, message: { ts: t, text: args.text, blocks: args.blocks } };
      }
      case 'chat.update':
        return { ok: true, channel: args.channel, ts: args.ts, text: args.text };
      case 'chat.postEphemeral':
        return { ok: true, message_ts: ts() };
      case 'conversations.open':
        return { ok: true, channel: { id: `D${String(args.users).replace(/^U/, '')}` } };
      case 'views.open':
      case 'views.push':
      case 'views.update':
        return { ok: true, view: { id: args.view_id ?? `V${++this.seq}`, ...args.view } };
      case 'views.publish':
        return { ok: true, view: { id: `V${++this.seq}`, ...args.view } };
      case 'auth.test':
        return { ok: true, user_id: 'U0SIGNOFF', bot_id: 'B0SIGNOFF', team_id: 'T0CONTOSO' };
      default:
        return { ok: true };
    }
  }
}

function parseArgs(contentType: string, raw: string): Record<string, any> {
  if (contentType.includes('application/json')) return raw ? JSON.parse(raw) : {};
  const out: Record<string, any> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    out[k] = /^[[{]/.test(v) ? safeJson(v) : v;
  }
  return out;
}

function safeJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
