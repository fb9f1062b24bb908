import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * The CAs a connector trusts: the system's well-known roots plus a PEM file (the site's self-signed SMS Issuing root,
 * a TLS-inspecting proxy's CA). Node replaces the defaults when `ca` is given, hence the explicit union.
 */
export function trustedCas(caFile: string | undefined): string[] | undefined {
  if (!caFile) return undefined;
  return [...tls.rootCertificates, readFileSync(caFile, 'utf8')];
}

const MAX_BODY = 4 * 1024 * 1024;

/** One request over node:http(s), bounded by `timeoutMs`; redirects are not followed. */
export function httpRequest(
  url: URL,
  opts: {
    method: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    timeoutMs: number;
    ca?: string[];
    agent?: http.Agent;
  },
): Promise<HttpResult> {
  const client = url.protocol === 'https:' ? https : http;
  const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
  return new Promise<HttpResult>((resolve, reject) => {
    const req = client.request(url, {
      method: opts.method,
      headers: { ...opts.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
      ...(opts.agent ? { agent: opts.agent } : { agent: false }),
      ...(url.protocol === 'https:' && opts.ca && !opts.agent ? { ca: opts.ca } : {}),
    });
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error(`timed out after ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      opts.timeoutMs,
    );
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY) chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    req.end(body);
  });
}
