import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { out } from './run.ts';

/**
 * `signoff webhook-receiver`: a local Standard Webhooks receiver for trying Signoff out. It checks every
 * signature with the endpoint's secret, prints one line per delivery, answers 204 (401 when the signature does
 * not verify, so Signoff records the failure).
 */
export function runWebhookReceiver(opts: { port: number; secret: string; host: string }): Promise<void> {
  const wh = new Webhook(opts.secret);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      try {
        const payload = wh.verify(body, headers) as { type?: string; data?: Record<string, unknown> };
        const d = payload.data ?? {};
        const what = [d.applicationName ?? (d.application as { name?: string } | undefined)?.name, d.requestId ?? d.changeId]
          .filter(Boolean)
          .join(' ');
        out.line(`${new Date().toISOString()} verified ${payload.type} ${headers['webhook-id']}${what ? ` (${what})` : ''}`);
        out.line(`  ${JSON.stringify(d)}`);
        res.writeHead(204).end();
      } catch (e) {
        out.line(`${new Date().toISOString()} REJECTED ${req.method} ${req.url}: ${(e as Error).message}`);
        res.writeHead(401, { 'content-type': 'text/plain' }).end('signature did not verify\n');
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      out.line(`Listening on http://${opts.host}:${opts.port}/ for signed webhooks (Ctrl+C to stop)`);
      const stop = () => server.close(() => resolve());
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  });
}
