import fc from 'fast-check';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import type { Built } from './api-fuzz-arbitraries.ts';
import { badSegment, brokenJson, junkJson, junkString, wrongContentType } from './fuzz-inputs.ts';

/**
 * Bad requests for the endpoints beside the REST API, for api-fuzz.test.ts: the Slack endpoint (unsigned, stale or
 * signed junk), the Teams endpoint, the email-link pages and paths that name nothing.
 */

export function slackCase(secret: string): fc.Arbitrary<Built> {
  const now = () => Math.floor(Date.now() / 1000);
  const signed = (body: string, type: string, stale = false) => {
    const at = stale ? now() - 3600 : now();
    return { 'content-type': type, 'x-slack-request-timestamp': String(at), 'x-slack-signature': signSlackBody(secret, at, body) };
  };
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  return fc.oneof(
    // unsigned, badly signed or stale: refused before a byte is parsed
    fc
      .record({
        body: fc.oneof(
          junkString,
          junkJson.map((j) => JSON.stringify(j) ?? ''),
        ),
        sig: fc.oneof(
          fc.constant(undefined),
          junkString.filter((s) => /^[\x20-\x7e]*$/.test(s)),
          fc.constant(`v0=${'0'.repeat(64)}`),
        ),
        stale: fc.boolean(),
      })
      .map(
        ({ body, sig, stale }): Built => ({
          c: {
            method: 'POST',
            path: '/slack/events',
            headers:
              sig === undefined
                ? stale
                  ? signed(body, 'application/x-www-form-urlencoded', true)
                  : { 'content-type': 'application/x-www-form-urlencoded' }
                : { 'content-type': 'application/json', 'x-slack-request-timestamp': String(now()), 'x-slack-signature': sig },
            body,
          },
          definite: true,
          defects: ['auth'],
        }),
      ),
    // signed junk: payloads that are not JSON or not interactions, commands from nobody with nasty text, odd events
    fc
      .oneof(
        fc
          .oneof(
            brokenJson,
            junkJson.map((j) => JSON.stringify(j) ?? 'null'),
          )
          .map((p) => ({ body: form({ payload: p }), type: 'application/x-www-form-urlencoded' })),
        fc.record({ text: junkString, user: junkString, channel: junkString, url: junkString }).map((f) => ({
          body: form({
            command: '/signoff',
            text: f.text,
            user_id: `UFUZZ${f.user}`,
            channel_id: f.channel,
            trigger_id: 'T0',
            response_url: f.url,
          }),
          type: 'application/x-www-form-urlencoded',
        })),
        fc
          .oneof(
            brokenJson,
            junkJson.map((j) => JSON.stringify({ type: 'event_callback', event: j })),
            junkString.map((u) =>
              JSON.stringify({ type: 'event_callback', event: { type: 'app_home_opened', user: `UFUZZ${u}`, tab: 'home' } }),
            ),
            junkJson.map((j) => JSON.stringify({ type: 'url_verification', challenge: j })),
          )
          .map((b) => ({ body: b, type: 'application/json' })),
        fc.tuple(junkString, wrongContentType).map(([b, type]) => ({ body: b, type })),
      )
      .map(
        ({ body, type }): Built => ({
          c: { method: 'POST', path: '/slack/events', headers: signed(body, type), body },
          definite: false,
          defects: ['body'],
        }),
      ),
  );
}

let teamsSeq = 0;
export function teamsCase(tenant: string): fc.Arbitrary<Built> {
  return fc
    .oneof(
      brokenJson.map((b) => ({ body: b, type: 'application/json' })),
      junkJson.map((j) => ({ body: JSON.stringify(j) ?? 'null', type: 'application/json' })),
      fc.tuple(junkString, wrongContentType).map(([b, type]) => ({ body: b, type })),
      // activity-shaped, each with a part of the wrong type: no conversation to answer in, no sender
      fc
        .record({
          type: fc.oneof(junkString, fc.constantFrom('message', 'invoke', 'conversationUpdate')),
          text: junkJson,
          from: junkJson,
          conversation: junkJson,
          value: junkJson,
          serviceUrl: junkString,
          name: fc.oneof(junkString, fc.constant('adaptiveCard/action')),
        })
        .map((a) => ({
          body: JSON.stringify({
            ...a,
            id: `fuzz-${++teamsSeq}`,
            channelId: 'msteams',
            recipient: { id: '28:signoff-bot' },
            channelData: { tenant: { id: tenant } },
          }),
          type: 'application/json',
        })),
    )
    .map(
      ({ body, type }): Built => ({
        c: { method: 'POST', path: '/api/messages', headers: { 'content-type': type }, body },
        definite: false,
        defects: ['body'],
      }),
    );
}

export function linkCase(): fc.Arbitrary<Built> {
  return fc
    .record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
      token: fc.oneof(
        badSegment,
        fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64url')),
      ),
      body: fc.oneof(
        junkString.map((r) => new URLSearchParams({ reason: r, version: '1' }).toString()),
        junkString,
        brokenJson,
      ),
      type: fc.oneof(fc.constant('application/x-www-form-urlencoded'), wrongContentType, fc.constant('application/json')),
    })
    .map(
      (g): Built => ({
        c: {
          method: g.method,
          path: `/links/${g.token}`,
          headers: g.method === 'GET' ? {} : { 'content-type': g.type },
          body: g.method === 'GET' ? undefined : g.body,
        },
        definite: true,
        defects: ['path'],
      }),
    );
}

export function strayCase(adminKey: string): fc.Arbitrary<Built> {
  return (
    fc
      .tuple(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        fc.array(badSegment, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('/api/v1/', '/', '/api/', '/links', '/api/v1/requests/', '/slack/'),
      )
      // OPTIONS on a path that exists is answered with its Allow list, which is no failure
      .map(
        ([method, segs, prefix]): Built => ({
          c: { method, path: `${prefix}${segs.join('/')}`, headers: { authorization: `Bearer ${adminKey}` } },
          definite: method !== 'OPTIONS',
          defects: ['path'],
        }),
      )
  );
}
