import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeamsAdapter } from '../../src/bots/teams/index.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let base: string;
let close: () => void;
beforeAll(async () => {
  t = await createTestContext({ TEAMS_EMULATOR: '1' });
  const adapter = createTeamsAdapter(t.ctx);
  const app = createHttpApp(t.ctx, { mount: (a) => adapter.mount(a) });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => server.close();
});
afterAll(async () => {
  close();
  await t.close();
});

describe('POST /api/messages in the full server', () => {
  it('answers a body that is not an activity with a 400 problem, not a 500', async () => {
    const res = await fetch(`${base}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({ code: 'validation_failed', detail: expect.stringContaining('missing activity type') });
  });
});
