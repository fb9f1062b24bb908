import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { secretBytes, sign, signedHeaders, webhookBody } from '../../src/integrations/webhooks/signing.ts';

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('Standard Webhooks signing', () => {
  it('matches the reference library byte for byte', () => {
    const body = webhookBody('app.install', '2026-01-05T09:00:00.000Z', { requestId: 'r1', clientGuid: 'GUID:1' });
    const at = new Date('2026-01-05T09:00:00Z');
    const ours = sign(secret, 'msg_abc', Math.floor(at.getTime() / 1000), body);
    const theirs = new Webhook(secret).sign('msg_abc', at, body);
    expect(ours).toBe(theirs);
  });

  it('produces headers the reference verifier accepts, and rejects a tampered body', () => {
    const body = webhookBody('app.uninstall', new Date().toISOString(), { requestId: 'r2' });
    const headers = signedHeaders(secret, 'msg_def', body);
    expect(headers['webhook-id']).toBe('msg_def');
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const wh = new Webhook(secret);
    expect(wh.verify(body, headers)).toMatchObject({ type: 'app.uninstall', data: { requestId: 'r2' } });
    expect(() => wh.verify(body.replace('r2', 'r3'), headers)).toThrow();
  });

  it('decodes the base64 key behind the whsec_ prefix', () => {
    expect(secretBytes(secret)).toEqual(Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'));
  });

  it('shapes the body as {type, timestamp, data}', () => {
    expect(JSON.parse(webhookBody('change.apply', '2026-01-05T09:00:00.000Z', { before: 1, after: 2 }))).toEqual({
      type: 'change.apply',
      timestamp: '2026-01-05T09:00:00.000Z',
      data: { before: 1, after: 2 },
    });
  });
});
