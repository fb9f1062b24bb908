import fc from 'fast-check';
import querystring from 'node:querystring';
import { z } from 'zod';
import type { AppContext } from '../../src/app-context.ts';
import { API_BASE, buildApiRouter } from '../../src/integrations/http/app.ts';
import type { RouteDef } from '../../src/integrations/http/route-registry.ts';
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
} from './fuzz-inputs.ts';

/**
 * Whole bad requests for the REST routes of the OpenAPI document, for api-fuzz.test.ts: each carries at least one
 * defect that must refuse it (no or a wrong key, a missing scope, a body the route's own schema refuses, a NUL,
 * broken JSON, a wrong content type, a bad Idempotency-Key or If-Match, a path naming nothing, a bad query, a wrong
 * method) plus random noise. The other endpoints' cases are in endpoint-fuzz-arbitraries.ts.
 */

/** one HTTP request as sent */
export interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export type Defect =
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

export interface Built {
  c: Sent;
  /** whether it must be refused (a 4xx); chat endpoints may acknowledge junk they then ignore */
  definite: boolean;
  defects: Defect[];
}

/** What the generated requests draw on: API keys by name with their scopes, and real ids by kind of item. */
export interface FuzzFixtures {
  keys: Record<string, { key: string; scopes: string[] }>;
  real: Record<string, string[]>;
}

export interface ApiRoute {
  method: string;
  oaPath: string;
  def: RouteDef;
  allowed: string[];
  ifMatch: boolean;
}

export function apiRoutes(ctx: AppContext, openApi: { paths: Record<string, Record<string, unknown>> }): ApiRoute[] {
  const { registry } = buildApiRouter(ctx);
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
function refusedBody(def: RouteDef, body: Record<string, unknown>): Record<string, unknown> {
  // judged as the route judges it: after what it takes back (a PUT drops GET's read-only fields and nulls)
  if (def.body && !def.body.safeParse(def.prepareBody ? def.prepareBody(body) : body).success) return body;
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

export function apiCase(route: ApiRoute, { keys, real }: FuzzFixtures): fc.Arbitrary<Built> {
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
          ? refusedBody(route.def, g.body)
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
