import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';

const HIDDEN = 'ScopeId_X/Application_hidden';
const UNKNOWN = 'ScopeId_X/Application_nothing';

let h: TeamsHarness;
let api: ReturnType<typeof request>;
let key: string;
beforeAll(async () => {
  h = await startTeamsHarness();
  await h.t.tdb.db.query(
    `INSERT INTO applications (id, name, visibility, per_device, policy_id) SELECT $1, 'Secret Tool', 'hidden-until-approved', true, policy_id FROM applications WHERE id = $2`,
    [HIDDEN, VISIO],
  );
  key = (await createApiKey(h.t.tdb.db, 'portal', ['requests:read', 'requests:write'])).key;
  api = request(createHttpApp(h.t.ctx));
});
afterAll(() => h.close());

const body = (applicationId: string) => ({
  applicationId,
  username: 'CONTOSO\\bob',
  clientGuid: BOB_LAPTOP,
  justification: 'needed',
  answers: { usage: 'Other' },
});
const submit = (applicationId: string) => api.post('/api/v1/requests').set('Authorization', `Bearer ${key}`).send(body(applicationId));
const requestCount = async () => Number((await h.t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM requests')).n);
/** the answer with the id it names taken out, so a hidden and an unknown application can be compared */
const shape = (res: { status: number; body: Record<string, unknown> }, id: string) =>
  JSON.parse(
    JSON.stringify({ status: res.status, body: { ...res.body, traceId: undefined } }).replaceAll(JSON.stringify(id).slice(1, -1), 'ID'),
  );

describe('hidden-until-approved applications', () => {
  it('REST refuses a hidden application exactly as an unknown one, and creates nothing', async () => {
    const hidden = await submit(HIDDEN);
    const unknown = await submit(UNKNOWN);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toMatchObject({ code: 'not_found', errors: [{ field: 'applicationId' }] });
    expect(shape(hidden, HIDDEN)).toEqual(shape(unknown, UNKNOWN));
    expect(await requestCount()).toBe(0);
  });

  it('the core refuses it whatever the channel: a chat submission gets the same error', async () => {
    for (const channel of ['slack', 'teams'] as const) {
      const refused = await h.t.ctx.requests
        .submit(
          { id: h.s.bob.id, label: 'Bob User', channel },
          { applicationId: HIDDEN, requesterId: h.s.bob.id, clientGuid: BOB_LAPTOP, justification: 'x', answers: { usage: 'Other' } },
        )
        .catch((e: Error) => e);
      expect(refused).toMatchObject({ code: 'not_found', message: `No application with id "${HIDDEN}" is in the catalog.` });
    }
    expect(await requestCount()).toBe(0);
  });

  it('Teams answers "request Secret Tool" and a crafted form submission as it answers an unknown application', async () => {
    h.connector.reset();
    await h.post(h.message('bob', 'request Secret Tool'));
    const picker = JSON.stringify(cardOf(h.connector.posted()[0]!.body));
    expect(picker).toContain('No application called \\"Secret Tool\\" is in the catalog');
    expect(picker).not.toContain(HIDDEN);

    const submitCard = (applicationId: string) =>
      h.post(h.invoke('bob', 'submitRequest', { kind: 'form', applicationId, device: h.s.deviceId, justification: 'x', q_usage: 'Other' }));
    const hidden = JSON.stringify((await submitCard(HIDDEN)).body);
    const unknown = JSON.stringify((await submitCard(UNKNOWN)).body);
    expect(hidden.replaceAll(HIDDEN, 'ID')).toEqual(unknown.replaceAll(UNKNOWN, 'ID'));
    expect(await requestCount()).toBe(0);
  });

  it('once an approver has approved it for bob, it is his to see and the API treats it as any other application', async () => {
    const created = await api
      .post('/api/v1/approved-requests')
      .set('Authorization', `Bearer ${key}`)
      .send({ applicationId: HIDDEN, clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob' });
    expect(created.status).toBe(201);
    const again = await submit(HIDDEN);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'already_approved', requestId: created.body.id });
  });
});
