import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemErrorHandler } from '../../src/integrations/http/problem.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

/** What the fuzz suite found answered with a 500 before, kept here as plain cases. */
let h: ApiHarness;
let webhookName: string;
beforeAll(async () => {
  h = await createApiHarness();
  webhookName = (
    await h
      .as(h.keys.admin)
      .post('/api/v1/webhooks', { name: 'dm', url: 'https://dm.example.com/hooks', events: ['app.install'] })
      .expect(201)
  ).body.name;
});
afterAll(() => h.close());

const cursorOf = (s: string) => Buffer.from(s).toString('base64url');

describe('inputs the fuzz suite found', () => {
  const cases: [string, () => request.Test, number, string?][] = [
    [
      'a NUL in a body string',
      () =>
        h.as(h.keys.write).post('/api/v1/requests', {
          applicationId: VISIO,
          username: 'CONTOSO\\bob',
          clientGuid: BOB_LAPTOP,
          justification: 'a\u0000b',
          answers: { usage: 'Other' },
        }),
      400,
      'justification',
    ],
    [
      'a NUL in a body key',
      () =>
        h.as(h.keys.write).post('/api/v1/requests', {
          applicationId: VISIO,
          username: 'CONTOSO\\bob',
          clientGuid: BOB_LAPTOP,
          answers: { 'us\u0000age': 'Other' },
        }),
      400,
      'answers.us\\0age',
    ],
    [
      'half a surrogate pair in a change’s justification (kept, it would have become U+FFFD)',
      () =>
        h.as(h.keys.changes).post('/api/v1/changes', {
          resourceType: 'script',
          resourceId: 'scripts/surrogate.ps1',
          before: null,
          after: { body: 'x' },
          justification: 'abc\ud800',
        }),
      400,
      'justification',
    ],
    [
      'a body nested 3000 levels deep (the check walked it recursively and overflowed the stack)',
      () =>
        h
          .as(h.keys.write)
          .post('/api/v1/requests', `{"applicationId":${'['.repeat(3000)}${']'.repeat(3000)}}`, { 'Content-Type': 'application/json' }),
      400,
    ],
    [
      'a body that is not what its Content-Encoding says',
      () => h.as(h.keys.write).post('/api/v1/requests', '{}', { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }),
      400,
      '(body)',
    ],
    ['a NUL in the query', () => h.as(h.keys.read).get('/api/v1/requests?username=a%00b'), 400, 'username'],
    ['a NUL in the path', () => h.as(h.keys.read).get('/api/v1/requests/a%00b'), 400, '(path)'],
    ['a malformed escape in the path', () => h.as(h.keys.admin).get('/api/v1/identities/%E0%A4%A'), 400, '(path)'],
    [
      'a cursor with a date Postgres cannot hold',
      () => h.as(h.keys.read).get(`/api/v1/requests?cursor=${cursorOf('275760-09-13T00:00:00.000Z|2948b920-aa9e-4c54-934f-dc3d0188526c')}`),
      400,
    ],
    [
      'an unknown body on rotate-secret',
      () => h.as(h.keys.admin).post(`/api/v1/webhooks/${webhookName}/rotate-secret`, { secret: 'mine' }),
      400,
      'secret',
    ],
  ];
  it.each(cases)('%s is a 400 problem, not a 500, and changes nothing', async (_name, send, status, field) => {
    const before = await h.counts();
    const res = await send();
    expect(res.status, res.text).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'validation_failed', retryable: false });
    if (field) expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    expect(await h.counts()).toEqual(before);
  });

  /** The Teams endpoint with the emulator's unauthenticated traffic allowed, and an activity envelope for it. */
  const teams = async (activity: Record<string, unknown>) => {
    const { createTeamsAdapter } = await import('../../src/bots/teams/index.ts');
    const express = (await import('express')).default;
    const app = express();
    createTeamsAdapter({ ...h.t.ctx, config: { ...h.t.ctx.config, TEAMS_EMULATOR: true } }, { minSendIntervalMs: 0 }).mount(app);
    app.use(problemErrorHandler(h.t.ctx));
    return request(app)
      .post('/api/messages')
      .send({
        id: 'x1',
        channelId: 'msteams',
        serviceUrl: 'http://127.0.0.1:9/',
        from: { id: '29:x' },
        recipient: { id: '28:bot' },
        conversation: { id: 'a:x', conversationType: 'personal' },
        ...activity,
      });
  };

  it('an unknown invoke name in Teams is a 400, not a 501', async () => {
    const res = await teams({ type: 'invoke', name: 'composeExtension/fuzz', value: {} });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('does not handle the invoke');
  });

  it.each([
    ['a message whose text is a number', { type: 'message', text: 123 }, 'text'],
    ['members added that are no list', { type: 'conversationUpdate', membersAdded: 'x' }, 'membersAdded'],
    ['no sender', { type: 'message', text: 'help', from: null }, 'from'],
  ])('a Teams activity with %s is a 400 naming the field, not a failed turn', async (_name, fields, field) => {
    const res = await teams(fields);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'validation_failed', errors: [expect.objectContaining({ field })] });
  });
});
