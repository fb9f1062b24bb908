import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export interface Received {
  path: string;
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  payload: { type: string; timestamp: string; data: Record<string, any> };
  /** standardwebhooks verified the signature */
  verified: boolean;
  verifyError?: string;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** never answer (the socket stays open until the client gives up or dies) */
  hold?: boolean;
}

export interface Receiver {
  url: string;
  secret: string;
  received: Received[];
  /** ids whose delivery was answered 2xx, one entry per id: "once in effect" */
  accepted: Map<string, Received>;
  setHandler(fn: (r: Received, n: number) => Reply | Promise<Reply>): void;
  close(): Promise<void>;
}

export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/** A local Standard Webhooks receiver on 127.0.0.1:0 that checks every signature with the reference library. */
export async function startReceiver(opts: { secret?: string; path?: string } = {}): Promise<Receiver> {
  const secret = opts.secret ?? newSecret();
  const wh = new Webhook(secret);
  const received: Received[] = [];
  const accepted = new Map<string, Received>();
  let handler: (r: Received, n: number) => Reply | Promise<Reply> = () => ({ status: 200 });
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      let verified = false;
      let verifyError: string | undefined;
      try {
        wh.verify(body, headers);
        verified = true;
      } catch (e) {
        verifyError = (e as Error).message;
      }
      let payload: Received['payload'];
      try {
        payload = JSON.parse(body);
      } catch {
        payload = { type: '(unparseable)', timestamp: '', data: {} };
      }
      const r: Received = {
        path: req.url ?? '',
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        signature: headers['webhook-signature'],
        body,
        payload,
        verified,
        verifyError,
      };
      received.push(r);
      const reply = await handler(r, received.filter((x) => x.id === r.id).length);
      if (reply.hold) {
        held.push(res);
        return;
      }
      if (reply.status >= 200 && reply.status < 300 && verified && !accepted.has(r.id)) accepted.set(r.id, r);
      res.writeHead(reply.status, reply.headers ?? {});
      res.end(reply.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${opts.path ?? '/hooks'}`,
    secret,
    received,
    accepted,
    setHandler: (fn) => {
      handler = fn;
    },
    close: async () => {
      for (const h of held) h.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Holds every request to the receiver open until the returned function is called; then each is answered 200. */
export function holdAnswers(r: Receiver): () => void {
  let release!: () => void;
  const released = new Promise<void>((res) => (release = res));
  r.setHandler(async () => {
    await released;
    return { status: 200 };
  });
  return release;
}

// the one wait helper, kept importable from here where most tests already take it
export { waitFor } from './wait.ts';
