import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyDefinitionSchema } from '../../src/core/policy-schema.ts';
import { BOB_LAPTOP, defaultPolicy, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
  const policy = policyDefinitionSchema.parse({
    ...defaultPolicy,
    questions: [
      ...defaultPolicy.questions!,
      { id: 'formats', text: 'Which formats?', type: 'multichoice', options: ['vsdx', 'svg', 'pdf'] },
    ],
  });
  await h.t.tdb.db.query('UPDATE policies SET definition = $1 WHERE name = $2', [JSON.stringify(policy), VISIO]);
});
afterAll(() => h.close());

const submit = (formats: unknown) =>
  h.as(h.keys.write).post('/api/v1/requests', {
    applicationId: VISIO,
    username: 'CONTOSO\\bob',
    clientGuid: BOB_LAPTOP,
    justification: 'diagrams',
    answers: { usage: 'Diagrams', formats },
  });

describe('multiple-choice answers over REST', () => {
  it('refuses an option given twice and options that do not exist with a 400 naming the question, storing nothing', async () => {
    const before = await h.counts();
    const twice = await submit(['svg', 'pdf', 'svg']);
    expect(twice.status).toBe(400);
    expect(twice.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(twice.body).toMatchObject({
      code: 'validation_failed',
      errors: [{ field: 'answers.formats', message: 'Choose each option once ("svg" is given more than once).' }],
    });
    expect(twice.body.detail).toContain('answers.formats');

    const unknown = await submit(['svg', 'png']);
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors).toEqual([{ field: 'answers.formats', message: '"png" is not one of the options.' }]);
    const notAList = await submit('svg');
    expect(notAList.status).toBe(400);
    expect(notAList.body.errors).toEqual([{ field: 'answers.formats', message: 'Choose one or more of the options.' }]);
    expect(await h.counts()).toEqual(before);
  });

  it('stores a set of known options as given', async () => {
    const ok = await submit(['pdf', 'vsdx']);
    expect(ok.status).toBe(201);
    expect(ok.body.answers).toEqual({ usage: 'Diagrams', formats: ['pdf', 'vsdx'] });
  });
});
