import fc from 'fast-check';
import http from 'node:http';
import querystring from 'node:querystring';
import { z } from 'zod';
import type express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAdapter } from '../../src/bots/slack/index.ts';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import { createTeamsAdapter } from '../../src/bots/teams/index.ts';
import { createApiKey } from '../../src/core/api-keys.ts';
import { API_BASE, buildApiRouter, createHttpApp, startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { mountLinkRoutes } from '../../src/integrations/http/link-routes.ts';
import type { RouteDef } from '../../src/integrations/http/route-registry.ts';
import { FakeBotConnector } from '../support/fake-bot-connector.ts';
import { FakeSlackApi } from '../support/fake-slack-api.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import {
  badAuthorization,
  badIdempotencyKey,
  badIfMatch,
  badSegment,
  brokenJson,
  doctoredCursor,
  junkJson,
  junkString,
  wellFormed,
  wrongContentType,
  wrongTypeFor,
} from '../support/fuzz-inputs.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

/**
 * Thousands of generated bad inputs across every route of the OpenAPI document, the email-link pages, the Slack
 * endpoint and the Teams endpoint. Every answer is a 4xx (never a 5xx) with a problem+json body (the link pages
 * answer people with an HTML page), and afterwards every table holds exactly what it held before: bad input
 * changes nothing. Each generated request carries at least one defect that must refuse it (no or a wrong key,
 * a missing scope, a body the route's own schema refuses, a NUL, broken JSON, a wrong content type, a bad
 * Idempotency-Key or If-Match, a path naming nothing, a malformed escape, a wrong method) plus random noise.
 *
 * FUZZ_RUNS sets how many requests are generated in all (default 3000: about a minute on a busy 2-core machine);
 * a refusal that fails is listed with the exact request, and FUZZ_FAILURES_FILE writes all of them to a file.
 */
const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
// FUZZ_SEED repeats a run (each property is seeded with it); unset, every run explores new inputs
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const SECRET = 'fuzz-signing-secret';
const TENANT = '72f988bf-0000-4000-8000-000000000001';

let t: TestContext;
let slack: FakeSlackApi;
let connector: FakeBotConnector;
let server: RunningServer;
let before: Record<string, string>;
let openApi: { paths: Record<string, Record<string, unknown>> };
const keys: Record<string, { key: string; scopes: string[] }> = {};
const real: Record<string, string[]> = {};
const sent = { count: 0 };

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}
interface Got {
  status: number;
  type: string;
  text: string;
}

function send(c: Sent): Promise<Got> {
  sent.count++;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method: c.method, path: c.path, headers: c.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (c.body !== undefined) req.end(c.body);
    else req.end();
  });
}

/** Every table's rows, hashed; api_keys without last_used_at (bookkeeping of each call, not content). */
async function snapshot(): Promise<Record<string, string>> {
  const db = t.tdb.db;
  const tables = await db.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const row = await db.one<{ n: string; h: string }>(
      `SELECT count(*) AS n, md5(coalesce(string_agg(j::text, E'\\n' ORDER BY j::text), '')) AS h
         FROM (SELECT to_jsonb(x)${name === 'api_keys' ? ` - 'last_used_at'` : ''} AS j FROM "${name}" x) s`,
    );
    out[name] = `${row.n} rows, ${row.h}`;
  }
  return out;
}

beforeAll(async () => {
  slack = await new FakeSlackApi().start();
  connector = await new FakeBotConnector().start();
  t = await createTestContext({
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_BOT_TOKEN: 'xoxb-fuzz',
    SLACK_API_URL: slack.url,
    TEAMS_EMULATOR: '1',
  });
  const s = await seedContoso(t.tdb.db);
  const db = t.tdb.db;
  for (const [name, scopes] of Object.entries({
    write: ['requests:read', 'requests:write'],
    read: ['requests:read'],
    changes: ['changes:write'],
    admin: ['admin'],
  })) {
    keys[name] = { key: (await createApiKey(db, `fuzz-${name}`, scopes)).key, scopes };
  }
  keys.bound = {
    key: (await createApiKey(db, 'fuzz-bound', ['requests:read', 'requests:write', 'changes:write'], s.ada.id)).key,
    scopes: ['requests:read', 'requests:write', 'changes:write'],
  };

  // something real behind each kind of id, so bad input meets real rows too
  const actor = { id: null, label: 'api:seed', channel: 'api' as const };
  const pending = await t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'diagrams',
    answers: { usage: 'Other' },
  });
  await db.query(`INSERT INTO devices (client_guid, name) VALUES ('GUID:FUZZ-0000-0000-0000-000000000002', 'KIOSK')`);
  const machine = await t.ctx.requests.createApproved(actor, { applicationId: VISIO, clientGuid: 'GUID:FUZZ-0000-0000-0000-000000000002' });
  const change = await t.ctx.changes.submit(
    { id: s.ada.id, label: 'Ada Admin', channel: 'api' },
    { resourceType: 'script', resourceId: 'C:\\fuzz.ps1', before: { a: 1 }, after: { a: 2 }, justification: 'fuzz' },
  );
  await t.ctx.catalog.upsertWebhook({ name: 'fuzz-hook', url: 'https://dm.example.com/hooks', events: ['app.install'] } as never, actor, {
    mode: 'create',
  });
  Object.assign(real, {
    requests: [pending.id, machine.request.id],
    changes: [change.id],
    identities: ['CONTOSO%5Cbob', s.ada.id],
    devices: [encodeURIComponent(BOB_LAPTOP)],
    'approver-groups': ['it-approvers'],
    policies: [encodeURIComponent(VISIO)],
    applications: [encodeURIComponent(VISIO)],
    'change-policies': ['protect-scripts'],
    webhooks: ['fuzz-hook'],
    reviews: [],
    deliveries: [],
  });

  const slackAdapter = createSlackAdapter(t.ctx, { ackBudgetMs: 60_000 });
  const teamsAdapter = createTeamsAdapter(t.ctx, { minSendIntervalMs: 0 });
  const app = createHttpApp(t.ctx, {
    mount: (a: express.Express) => {
      slackAdapter.mount(a);
      teamsAdapter.mount(a);
      mountLinkRoutes(a, t.ctx);
    },
  });
  server = await startHttpServer(app, 0, { host: '127.0.0.1' });
  openApi = JSON.parse((await send({ method: 'GET', path: `${API_BASE}/openapi.json`, headers: {} })).text);
  before = await snapshot();
});
afterAll(async () => {
  await server?.close();
  await slack?.stop();
  await connector?.stop();
  await t?.close();
});

// ---------------------------------------------------------------------------------------------- the REST routes

interface ApiRoute {
  method: string;
  oaPath: string;
  def: RouteDef;
  allowed: string[];
  ifMatch: boolean;
}

function apiRoutes(): ApiRoute[] {
  const { registry } = buildApiRouter(t.ctx);
  const out: ApiRoute[] = [];
  for (const [oaPath, ops] of Object.entries(openApi.paths)) {
    for (const method of Object.keys(ops)) {
      const def = registry.routes.find((r) => r.method === method && `${API_BASE}${r.path.replace(/:([A-Za-z_]+)/g, '{$1}')}` === oaPath);
      if (!def) throw new Error(`${method} ${oaPath} is in the OpenAPI document but not in the registry`);
      out.push({
        method: method.toUpperCase(),
        oaPath,
        def,
        allowed: Object.keys(ops).map((m) => m.toUpperCase()),
        ifMatch: method === 'post' && /\/(requests|changes)\/\{id\}\/(approve|deny|revoke|reapprove|cancel|reject)$/.test(oaPath),
      });
    }
  }
  return out;
}

type Defect =
  | 'auth'
  | 'scope'
  | 'path'
  | 'contentType'
  | 'brokenJson'
  | 'body'
  | 'nul'
  | 'huge'
  | 'idempotency'
  | 'ifMatch'
  | 'query'
  | 'method';

const hasBody = (m: string) => m === 'POST' || m === 'PUT' || m === 'PATCH';
const DROP = Symbol.for('drop');

function bodyArbitrary(schema: z.ZodType | undefined): fc.Arbitrary<Record<string, unknown>> {
  let js: { properties?: Record<string, { type?: string }> } = {};
  try {
    js = schema ? (z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as typeof js) : {};
  } catch {
    /* a schema JSON Schema cannot express: junk alone */
  }
  const props = Object.entries(js.properties ?? {});
  const field = (type: string | undefined) => fc.oneof(wrongTypeFor(type), junkString, fc.constant(DROP), junkJson);
  return fc
    .tuple(fc.tuple(...props.map(([, p]) => field(p.type))), fc.dictionary(junkString, junkJson, { maxKeys: 2 }))
    .map(([values, extra]) => {
      const out: Record<string, unknown> = {};
      props.forEach(([k], i) => {
        if (values[i] !== DROP) out[k] = values[i];
      });
      return { ...extra, ...out };
    });
}

/** The body is one the route's schema refuses; when the junk happened to fit, an unknown NUL-named field makes sure. */
function refusedBody(schema: z.ZodType | undefined, body: Record<string, unknown>): Record<string, unknown> {
  if (schema && !schema.safeParse(body).success) return body;
  return { ...body, 'fuzz\u0000field': 1 };
}

function withNul(body: Record<string, unknown>): Record<string, unknown> {
  return { ...body, note: `inside${'\u0000'}text` };
}

/** querystring throws on lone surrogates; a client cannot send them either */
const wellFormedQuery = (q: Record<string, string>) =>
  Object.fromEntries(Object.entries(q).map(([k, v]) => [wellFormed(k), wellFormed(v)]));

function queryArbitrary(_route: ApiRoute): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(''),
    fc
      .dictionary(
        fc.constantFrom(
          'status',
          'limit',
          'cursor',
          'applicationId',
          'username',
          'clientGuid',
          'since',
          'target',
          'fuzz',
          'limit[]',
          'status[0]',
        ),
        fc.oneof(junkString, doctoredCursor, fc.constantFrom('0', '-1', '1e99', '10000', 'pending', 'NaN', '')),
        { maxKeys: 3 },
      )
      .map((q) => querystring.stringify(wellFormedQuery(q))),
    doctoredCursor.map((c) => `cursor=${c}`),
    fc.constantFrom('status=pending&status=approved', 'limit=5&limit=6', '%00=1', 'a=%00', '%zz=1', 'cursor=%E0%A4%A', '&&&', '=', 'limit'),
  );
}

interface Built {
  c: Sent;
  definite: boolean;
  defects: Defect[];
}

function apiCase(route: ApiRoute): fc.Arbitrary<Built> {
  const params = [...route.oaPath.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  const kind = route.oaPath.split('/')[3]!;
  const applicable: Defect[] = ['auth', 'method'];
  const lacking = Object.keys(keys).filter((k) => !keys[k]!.scopes.includes(route.def.scope) && !keys[k]!.scopes.includes('admin'));
  if (lacking.length) applicable.push('scope');
  if (params.length) applicable.push('path');
  if (hasBody(route.method)) applicable.push('contentType', 'brokenJson', 'body', 'nul', 'huge');
  if (route.method === 'POST') applicable.push('idempotency');
  if (route.ifMatch) applicable.push('ifMatch');
  if (route.def.query) applicable.push('query');
  const goodKeys = Object.keys(keys).filter((k) => keys[k]!.scopes.includes(route.def.scope) || keys[k]!.scopes.includes('admin'));

  const normal = fc
    .record({
      defects: fc.uniqueArray(fc.constantFrom(...applicable), { minLength: 1, maxLength: 3 }),
      auth: badAuthorization,
      goodKey: fc.constantFrom(...goodKeys),
      lackingKey: lacking.length ? fc.constantFrom(...lacking) : fc.constant(''),
      segments: fc.tuple(...params.map(() => fc.oneof(badSegment, fc.constantFrom(...(real[kind]?.length ? real[kind]! : ['fuzz-none']))))),
      badSegments: fc.tuple(...params.map(() => badSegment)),
      body: bodyArbitrary(route.def.body),
      rawBody: junkJson,
      broken: brokenJson,
      contentType: wrongContentType,
      idem: badIdempotencyKey,
      ifMatch: badIfMatch,
      query: queryArbitrary(route),
      badQuery: fc.oneof(
        fc
          .dictionary(
            fc.string({ minLength: 1, maxLength: 8 }).map((k) => `fuzz_${k}`),
            junkString,
            { minKeys: 1, maxKeys: 2 },
          )
          .map((q) => querystring.stringify(wellFormedQuery(q))),
        fc.constantFrom('limit=0', 'limit=-3', 'limit=ten', 'limit=1e3', 'status=maybe', 'a=%00', 'status=pending&status=approved'),
      ),
      wrongMethod: fc.constantFrom(...['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => !route.allowed.includes(m))),
      requestId: fc.option(
        junkString.filter((s) => /^[\x20-\x7e]*$/.test(s)),
        { nil: undefined },
      ),
      // noise a client may add: conditional GETs with odd tags, odd Accept values
      ifNoneMatch: fc.option(fc.oneof(badIfMatch, fc.constant('*')), { nil: undefined }),
      accept: fc.option(fc.constantFrom('text/html', 'application/xml', '*/*;q=0', 'application/problem+json', ';;;', 'é'), {
        nil: undefined,
      }),
    })
    .map((g) => {
      const d = new Set(g.defects);
      // PUT upserts whatever the path names: its body is always refused, so an unknown path cannot create a row
      if (
        route.method === 'PUT' &&
        !['body', 'nul', 'brokenJson', 'contentType', 'huge'].some((x) => d.has(x as Defect)) &&
        !d.has('auth') &&
        !d.has('scope') &&
        !d.has('method')
      )
        d.add('body');
      const segs = params.map((_p, i) => (d.has('path') ? g.badSegments[i]! : g.segments[i]!));
      let path = route.oaPath;
      params.forEach((p, i) => {
        path = path.replace(`{${p}}`, segs[i]!);
      });
      const query = d.has('query') ? g.badQuery : g.query;
      if (query) path += `?${query}`;
      const headers: Record<string, string> = {};
      if (d.has('auth')) {
        if (g.auth !== undefined) headers.authorization = g.auth;
      } else headers.authorization = `Bearer ${keys[d.has('scope') ? g.lackingKey : g.goodKey]!.key}`;
      if (g.requestId !== undefined) headers['x-request-id'] = g.requestId;
      if (g.ifNoneMatch !== undefined) headers['if-none-match'] = g.ifNoneMatch;
      if (g.accept !== undefined) headers.accept = g.accept;
      const method = d.has('method') ? g.wrongMethod : route.method;
      let body: string | Buffer | undefined;
      if (hasBody(route.method) || d.has('method')) {
        // a stale If-Match alone comes with a body that is otherwise right, so the version check is what refuses it
        const staleOnly = d.size === 1 && d.has('ifMatch');
        const obj = d.has('body')
          ? refusedBody(route.def.body, g.body)
          : d.has('nul')
            ? withNul(g.body)
            : staleOnly
              ? route.oaPath.endsWith('/cancel')
                ? { reason: 'fuzz' }
                : { approver: 'CONTOSO\\cyd', reason: 'fuzz' }
              : g.body;
        body = d.has('brokenJson')
          ? g.broken
          : d.has('huge')
            ? JSON.stringify({ ...obj, huge: 'x'.repeat(300 * 1024) })
            : JSON.stringify(d.has('contentType') ? (g.rawBody ?? {}) : obj);
        headers['content-type'] = d.has('contentType') ? g.contentType : 'application/json';
        if (d.has('contentType') && body.length === 0) body = 'x';
      }
      if (route.method === 'POST') {
        if (d.has('idempotency')) headers['idempotency-key'] = g.idem;
      }
      if (d.has('ifMatch')) headers['if-match'] = g.ifMatch;
      return { c: { method, path, headers, body }, definite: true, defects: [...d] };
    });
  if (!route.ifMatch || !real[kind]?.length) return normal;
  // a decision on a real item, right in every way but the version it names: the precondition is what refuses it
  const stale = fc
    .record({
      id: fc.constantFrom(...real[kind]!),
      tag: fc.constantFrom('"999"', 'W/"998"'),
      key: fc.constantFrom(...goodKeys.filter((k) => k !== 'bound')),
    })
    .map(
      ({ id, tag, key }): Built => ({
        c: {
          method: route.method,
          path: route.oaPath.replace('{id}', id),
          headers: { authorization: `Bearer ${keys[key]!.key}`, 'content-type': 'application/json', 'if-match': tag },
          body: JSON.stringify(route.oaPath.endsWith('/cancel') ? { reason: 'fuzz' } : { approver: 'CONTOSO\\cyd', reason: 'fuzz' }),
        },
        definite: true,
        defects: ['ifMatch'],
      }),
    );
  return fc.oneof({ weight: 5, arbitrary: normal }, { weight: 1, arbitrary: stale });
}

// ---------------------------------------------------------------------------------------------- the other endpoints

function slackCase(): fc.Arbitrary<Built> {
  const now = () => Math.floor(Date.now() / 1000);
  const signed = (body: string, type: string, stale = false) => {
    const at = stale ? now() - 3600 : now();
    return { 'content-type': type, 'x-slack-request-timestamp': String(at), 'x-slack-signature': signSlackBody(SECRET, at, body) };
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
function teamsCase(): fc.Arbitrary<Built> {
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
            channelData: { tenant: { id: TENANT } },
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

function linkCase(): fc.Arbitrary<Built> {
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

function strayCase(): fc.Arbitrary<Built> {
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
          c: { method, path: `${prefix}${segs.join('/')}`, headers: { authorization: `Bearer ${keys.admin!.key}` } },
          definite: method !== 'OPTIONS',
          defects: ['path'],
        }),
      )
  );
}

// ---------------------------------------------------------------------------------------------- the properties

const failures: string[] = [];
const statuses = new Map<number, number>();

/** Teams reads an invoke's refusal in the Bot Framework's own error shape; that is the protocol's problem body. */
const botFrameworkError = (res: Got) => /^application\/json/.test(res.type) && /"type":"application\/vnd\.microsoft\.error"/.test(res.text);

function check(b: Built, res: Got, html: boolean): void {
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  const what = `${b.c.method} ${b.c.path.slice(0, 200)} [${b.defects.join(',')}] ${JSON.stringify(b.c.headers).slice(0, 200)} body=${String(b.c.body ?? '').slice(0, 200)} -> ${res.status} ${res.type} ${res.text.slice(0, 300)}`;
  if (res.status >= 500) failures.push(`5xx: ${what}`);
  else if (b.definite && (res.status < 400 || res.status >= 500)) failures.push(`accepted: ${what}`);
  else if (
    res.status >= 400 &&
    !/^application\/problem\+json/.test(res.type) &&
    !(html && /^text\/html/.test(res.type)) &&
    !(b.c.path === '/api/messages' && botFrameworkError(res))
  ) {
    failures.push(`not problem+json: ${what}`);
  } else if (/^application\/problem\+json/.test(res.type)) {
    const p = JSON.parse(res.text) as { status?: number; code?: string; type?: string; title?: string };
    if (p.status !== res.status || typeof p.code !== 'string' || typeof p.title !== 'string' || !p.type?.endsWith(p.code))
      failures.push(`malformed problem: ${what}`);
  }
}

afterAll(async () => {
  if (failures.length && process.env.FUZZ_FAILURES_FILE)
    (await import('node:fs')).writeFileSync(process.env.FUZZ_FAILURES_FILE, failures.join('\n\n'));
});

async function run(arb: fc.Arbitrary<Built>, numRuns: number, html = false): Promise<void> {
  await fc.assert(
    fc.asyncProperty(arb, async (b) => {
      check(b, await send(b.c), html);
    }),
    { numRuns, endOnFailure: true, ...(SEED !== undefined ? { seed: SEED } : {}) },
  );
}

describe('fuzzing every route with bad input', () => {
  it('covers every route in the OpenAPI document', () => {
    const routes = apiRoutes();
    expect(routes.length).toBeGreaterThan(40);
  });

  it('REST routes: every bad request is a 4xx problem, never a 5xx', async () => {
    const routes = apiRoutes();
    const perRoute = Math.max(10, Math.floor((TOTAL_RUNS * 0.8) / routes.length));
    for (const route of routes) await run(apiCase(route), perRoute);
    expect(failures.slice(0, 40).join('\n\n')).toBe('');
  });

  it('email links, Slack, Teams and stray paths: never a 5xx, refusals as problem+json (link pages: HTML for people)', async () => {
    const each = Math.max(20, Math.floor((TOTAL_RUNS * 0.2) / 4));
    await run(linkCase(), each, true);
    await run(slackCase(), each);
    await run(teamsCase(), each);
    await run(strayCase(), each);
    expect(failures.slice(0, 40).join('\n\n')).toBe('');
  });

  it('leaves every table exactly as it was', async () => {
    // the server first finishes what it acknowledged early (Slack work after its ack)
    await server.close();
    expect(await snapshot()).toEqual(before);
    expect(sent.count).toBeGreaterThanOrEqual(TOTAL_RUNS * 0.9);
    // the defects reached every layer: authentication, scopes, parsing, validation, lookup, methods, preconditions
    expect(
      [400, 401, 403, 404, 405, 412, 413, 415].filter((status) => !statuses.has(status)),
      JSON.stringify([...statuses]),
    ).toEqual([]);
  });
});
