import http from 'node:http';
import https from 'node:https';
import { agentFor, droppedOnReuse, keptAliveAgents } from '../../integrations/http/kept-alive.ts';

/**
 * The fetch Signoff's Slack calls go through (the Web API client's and response_url replies): node:http on
 * kept-alive connections. Global fetch's web streams cost about a tenth of the server's CPU in the decide-http
 * benchmark, for a handful of small JSON and form posts to one host. Redirects are not followed (a 3xx is just a
 * status, as with `redirect: 'error'`), and the answer's body is read whole: Slack's answers are small.
 */

const agents = keptAliveAgents();

/** What Signoff and the Slack Web API client read of a response. */
export interface SlackHttpResponse {
  url: string;
  ok: boolean;
  status: number;
  statusText: string;
  headers: Headers;
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** fetch's options, and a deadline for the whole exchange (as `AbortSignal.timeout`, with one plain timer instead) */
export type SlackFetchInit = RequestInit & { timeoutMs?: number };

export async function slackFetch(input: string | URL, init: SlackFetchInit = {}): Promise<SlackHttpResponse> {
  const body = init.body;
  const payload = body == null ? undefined : body instanceof URLSearchParams ? body.toString() : body;
  // multipart uploads and streams: left to fetch (Signoff sends neither today)
  if (payload !== undefined && typeof payload !== 'string' && !Buffer.isBuffer(payload)) {
    return (await fetch(input, init)) as unknown as SlackHttpResponse;
  }
  const url = new URL(String(input));
  const agent = agentFor(agents, url);
  if (!agent) throw new TypeError(`unsupported protocol ${url.protocol}`);
  const headers = headersOf(init.headers);
  if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
  const signal = init.signal ?? undefined;
  signal?.throwIfAborted();
  const deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
  const send = (reuse: boolean) =>
    request(url, { method: init.method ?? 'GET', agent: reuse ? agent : false, headers }, payload, signal, deadline);
  // dropped on reuse: send again on a new connection
  return send(true).catch((e: unknown) => (e === STALE ? send(false) : Promise.reject(e)));
}

/** A plain object's headers are copied as they are (lower-cased); building a WHATWG Headers for them cost more. */
function headersOf(given: HeadersInit | undefined): Record<string, string | number> {
  if (given === undefined) return {};
  if (given instanceof Headers || Array.isArray(given)) return Object.fromEntries(new Headers(given));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) out[k.toLowerCase()] = String(v);
  return out;
}

/** Response headers as a WHATWG Headers, built only when read (only a rate limit's Retry-After is). */
function lazyHeaders(raw: http.IncomingHttpHeaders): () => Headers {
  let built: Headers | undefined;
  return () => {
    if (!built) {
      built = new Headers();
      for (const [k, v] of Object.entries(raw)) for (const one of [v ?? []].flat()) built.append(k, one);
    }
    return built;
  };
}

const STALE = Symbol('stale connection');

function request(
  url: URL,
  options: http.RequestOptions,
  payload: string | Buffer | undefined,
  signal: AbortSignal | undefined,
  deadline: number | undefined,
): Promise<SlackHttpResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      signal?.removeEventListener('abort', abort);
      if (timer) clearTimeout(timer);
    };
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => {
        done();
        reject(e);
      });
      res.on('end', () => {
        done();
        const buf = Buffer.concat(chunks);
        const headers = lazyHeaders(res.headers);
        const status = res.statusCode ?? 0;
        resolve({
          url: url.href,
          ok: status >= 200 && status < 300,
          status,
          statusText: res.statusMessage ?? '',
          get headers() {
            return headers();
          },
          text: async () => buf.toString('utf8'),
          json: async () => JSON.parse(buf.toString('utf8')),
          arrayBuffer: async () => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer,
        });
      });
    });
    let timedOut = false;
    const abort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal?.addEventListener('abort', abort, { once: true });
    if (deadline !== undefined) {
      timer = setTimeout(
        () => {
          timedOut = true;
          req.destroy(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
        },
        Math.max(0, deadline - Date.now()),
      ).unref();
    }
    req.on('error', (e: NodeJS.ErrnoException) => {
      done();
      reject(!signal?.aborted && !timedOut && droppedOnReuse(req, answered, e) ? STALE : e);
    });
    req.end(payload);
  });
}
