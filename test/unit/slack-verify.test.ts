import { describe, expect, it } from 'vitest';
import { signSlackBody, verifySlackSignature } from '../../src/bots/slack/slack-verify.ts';

const secret = '8f742231b10e8888abcd99yyyzzz85a5';
const now = 1_767_600_000_000;
const ts = String(now / 1000);
const body = Buffer.from('token=x&command=%2Fsignoff&text=help');

describe('verifySlackSignature', () => {
  it("accepts Slack's documented v0 signature", () => {
    // the example from Slack's "Verifying requests from Slack" guide
    const example =
      'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
    const result = verifySlackSignature(
      secret,
      { timestamp: '1531420618', signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503' },
      Buffer.from(example),
      1531420618_000,
    );
    expect(result).toEqual({ ok: true });
  });

  it('accepts a fresh, correct signature', () => {
    expect(verifySlackSignature(secret, { timestamp: ts, signature: signSlackBody(secret, ts, body.toString()) }, body, now)).toEqual({
      ok: true,
    });
  });

  it.each([
    ['missing timestamp', { timestamp: undefined, signature: signSlackBody(secret, ts, body.toString()) }, now],
    ['missing signature', { timestamp: ts, signature: undefined }, now],
    ['301 s old', { timestamp: String(now / 1000 - 301), signature: signSlackBody(secret, now / 1000 - 301, body.toString()) }, now],
    [
      '301 s in the future',
      { timestamp: String(now / 1000 + 301), signature: signSlackBody(secret, now / 1000 + 301, body.toString()) },
      now,
    ],
    ['wrong secret', { timestamp: ts, signature: signSlackBody('other', ts, body.toString()) }, now],
    ['v1 scheme', { timestamp: ts, signature: signSlackBody(secret, ts, body.toString()).replace('v0=', 'v1=') }, now],
    ['truncated signature', { timestamp: ts, signature: signSlackBody(secret, ts, body.toString()).slice(0, 40) }, now],
    ['fractional timestamp', { timestamp: `${ts}.5`, signature: signSlackBody(secret, `${ts}.5`, body.toString()) }, now],
  ])('refuses %s', (_what, headers, at) => {
    expect(verifySlackSignature(secret, headers, body, at).ok).toBe(false);
  });

  it('refuses a body changed after signing', () => {
    const sig = signSlackBody(secret, ts, body.toString());
    expect(verifySlackSignature(secret, { timestamp: ts, signature: sig }, Buffer.from(`${body}&x`), now).ok).toBe(false);
  });
});
