import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { addressRefusal, assessOutboundUrl, type AllowList } from './url-safety.ts';

export type PostResult =
  | { kind: 'response'; status: number; retryAfter: string | null; excerpt: string; latencyMs: number }
  | { kind: 'network'; error: string; latencyMs: number }
  | { kind: 'refused'; reason: string; latencyMs: number };

const EXCERPT_BYTES = 1024;

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
export async function postOnce(opts: {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  allow: AllowList;
}): Promise<PostResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const verdict = await assessOutboundUrl(opts.url, opts.allow);
  if (!verdict.ok) {
    return verdict.kind === 'refused'
      ? { kind: 'refused', reason: verdict.reason, latencyMs: elapsed() }
      : { kind: 'network', error: verdict.reason, latencyMs: elapsed() };
  }
  const url = verdict.url;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve) => {
    let settled = false;
    const finish = (r: PostResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = client.request(url, {
      method: 'POST',
      headers: { ...opts.headers, 'content-length': Buffer.byteLength(opts.body) },
      lookup: verdict.allowedByName ? undefined : (guardedLookup(opts.allow) as never),
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy(Object.assign(new Error(`timed out after ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, opts.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EREFUSEDADDR') finish({ kind: 'refused', reason: e.message, latencyMs: elapsed() });
      else finish({ kind: 'network', error: `${e.code ?? 'error'}: ${e.message}`, latencyMs: elapsed() });
    });
    req.on('response', (res) => {
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
