import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { agentFor, droppedOnReuse, keptAliveAgents } from '../http/kept-alive.ts';
import { addressRefusal, assessOutboundUrl, type AllowList } from './url-safety.ts';

export type PostResult =
  | { kind: 'response'; status: number; retryAfter: string | null; excerpt: string; latencyMs: number }
  | { kind: 'network'; error: string; latencyMs: number }
  | { kind: 'refused'; reason: string; latencyMs: number };

const EXCERPT_BYTES = 1024;

/**
 * Connections to a receiver are kept open between deliveries (a TLS handshake per webhook costs the receiver and
 * us more than the POST). Each new connection still goes through the guarded lookup; LIFO reuse lets the spare
 * ones of a burst go idle and close.
 */
const agents = keptAliveAgents({ maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' });

/**
 * The check runs again inside the socket's own DNS lookup, so a name that resolved to a public address at
 * check time cannot be re-pointed at an internal one for the actual connection (DNS rebinding).
 */
function guardedLookup(allow: AllowList) {
  return (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as LookupAddress[];
      for (const a of list) {
        const refusal = addressRefusal(a.address, allow);
        if (refusal) {
          const e = Object.assign(new Error(`refused: ${hostname} resolves to ${refusal}`), { code: 'EREFUSEDADDR' });
          return callback(e, '', 0);
        }
      }
      if (options.all) callback(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/**
 * One POST. Redirects are never followed (node:http does not follow them; a 3xx is just a status), the whole
 * attempt is bounded by `timeoutMs`, and only the first KB of the response is kept.
 */
export async function postOnce(opts: PostOptions): Promise<PostResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const verdict = await assessOutboundUrl(opts.url, opts.allow);
  if (!verdict.ok) {
    return verdict.kind === 'refused'
      ? { kind: 'refused', reason: verdict.reason, latencyMs: elapsed() }
      : { kind: 'network', error: verdict.reason, latencyMs: elapsed() };
  }
  const first = await send(verdict.url, verdict.allowedByName, opts, started);
  if (first !== STALE_SOCKET) return first;
  // dropped on reuse: send again on a new connection (a second copy at worst, under the same webhook-id), within
  // what is left of the timeout
  const left = { ...opts, timeoutMs: Math.max(1, opts.timeoutMs - elapsed()) };
  return (await send(verdict.url, verdict.allowedByName, left, started, false)) as PostResult;
}

interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  allow: AllowList;
}

const STALE_SOCKET = Symbol('stale socket');

function send(
  url: URL,
  allowedByName: boolean,
  opts: PostOptions,
  started: number,
  reuse = true,
): Promise<PostResult | typeof STALE_SOCKET> {
  const elapsed = () => Math.round(performance.now() - started);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult | typeof STALE_SOCKET>((resolve) => {
    let settled = false;
    const finish = (r: PostResult | typeof STALE_SOCKET) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = client.request(url, {
      method: 'POST',
      headers: { ...opts.headers, 'content-length': Buffer.byteLength(opts.body) },
      lookup: allowedByName ? undefined : (guardedLookup(opts.allow) as never),
      agent: reuse ? agentFor(agents, url) : false,
    });
    const timer = setTimeout(() => {
      req.destroy(Object.assign(new Error(`timed out after ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, opts.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (droppedOnReuse(req, gotResponse, e)) finish(STALE_SOCKET);
      else if (e.code === 'EREFUSEDADDR') finish({ kind: 'refused', reason: e.message, latencyMs: elapsed() });
      else finish({ kind: 'network', error: `${e.code ?? 'error'}: ${e.message}`, latencyMs: elapsed() });
    });
    let gotResponse = false;
    req.on('response', (res) => {
      gotResponse = true;
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () =>
        finish({
          kind: 'response',
          status: res.statusCode ?? 0,
          retryAfter: (res.headers['retry-after'] as string | undefined) ?? null,
          excerpt: Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8'),
          latencyMs: elapsed(),
        });
      res.on('data', (c: Buffer) => {
        if (size < EXCERPT_BYTES) chunks.push(c);
        size += c.length;
        // enough for the excerpt; the status is what counts
        if (size >= EXCERPT_BYTES) {
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', done);
      res.on('close', done);
    });
    req.end(opts.body);
  });
}
