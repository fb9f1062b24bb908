import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/bots/slack/slack-ids.ts';
import { fanOut, runEffect } from '../../src/integrations/outbox-relay.ts';
import { attemptDelivery } from '../../src/integrations/webhooks/delivery-processor.ts';
import { defaultBackoff } from '../../src/integrations/webhooks/retry-policy.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
let h: SlackHarness;
let receiver: Server;
const received: { type: string; data: any }[] = [];

beforeAll(async () => {
  h = await startSlackHarness();
  await seedContoso(h.t.tdb.db);
  h.t.ctx.notifiers.push(h.adapter.notifier);
  const verifier = new Webhook(SECRET);
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      // a forged or altered delivery throws here and is answered 400
      try {
        received.push(verifier.verify(body, req.headers as Record<string, string>) as { type: string; data: any });
        res.writeHead(204).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  await h.t.tdb.db.query(
    `INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ('device-manager', $1, $2, '{app.install,app.uninstall,change.apply}')`,
    [url, SECRET],
  );
});
afterAll(async () => {
  await new Promise<void>((r) => receiver.close(() => r()));
  await h.close();
});

/** What the relay and workers do for each committed outbox row, minus the queue in between. */
async function relayAll(): Promise<void> {
  const rows = await h.t.tdb.db.query<{ id: string }>(`SELECT id FROM outbox WHERE status <> 'done' ORDER BY seq`);
  const rt = { ctx: h.t.ctx, allow: parseAllowList(h.t.ctx.config.WEBHOOK_ALLOW_HOSTS), backoff: defaultBackoff };
  for (const { id } of rows) {
    const out = await fanOut(h.t.ctx, id);
    for (const target of out.effects) await runEffect(h.t.ctx, id, target, false);
    for (const d of out.deliveries) await attemptDelivery(rt, d.id);
  }
}

describe('scenario 1 through Slack, the outbox relay and a device manager', () => {
  it('bob requests Visio in Slack, ada approves in C0APPROVE, the install webhook arrives signed', async () => {
    await h.command('U0BOB', 'request Visio');
    const [open] = await h.fake.waitFor('views.open');
    const submitted = await h.submit('U0BOB', open!.args.view, { justification: 'Network diagrams', q_usage: 'Diagrams' });
    expect(submitted.body.response_action).toBe('update');
    await relayAll();

    const prompt = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'C0APPROVE')!;
    const approve = buttonsOf(prompt.args.blocks).find((b) => b.action_id === ACTION.approve)!;
    await h.action('U0ADA', ACTION.approve, approve.value);
    await h.fake.waitFor('chat.postEphemeral');
    await relayAll();

    const update = h.fake.of('chat.update').find((u) => u.args.channel === 'C0APPROVE')!;
    expect(textOf(update.args.blocks)).toMatch(/Approved\* by \*Ada Admin\*/);
    expect(buttonsOf(update.args.blocks)).toEqual([]);
    expect(
      h.fake
        .of('chat.postMessage')
        .filter((p) => p.args.channel === 'D0BOB')
        .map((p) => p.args.text),
    ).toEqual(['Your request for Visio: pending', 'Your request for Visio was approved']);
    expect(received).toEqual([
      {
        type: 'app.install',
        timestamp: expect.any(String),
        data: expect.objectContaining({
          applicationId: VISIO,
          clientGuid: BOB_LAPTOP,
          deviceName: 'BOB-LAPTOP',
          username: 'CONTOSO\\bob',
          requestId: approve.value.split(':')[0],
        }),
      },
    ]);
    const effects = await h.t.tdb.db.query<{ status: string }>(`SELECT status FROM outbox_effects WHERE target = 'slack'`);
    expect(effects.every((e) => e.status === 'done')).toBe(true);
  });
});
