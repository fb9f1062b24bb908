import { createHash } from 'node:crypto';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import type { Actor } from '../../core/audit-log.ts';
import { requireScope, type ApiKeyPrincipal, type ApiScope } from '../../core/api-keys.ts';
import { AppError } from '../../core/errors.ts';
import { parseInput } from '../../core/validation.ts';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface HandlerInput<B, Q> {
  req: Request;
  res: Response;
  body: B;
  query: Q;
  params: Record<string, string>;
  principal: ApiKeyPrincipal;
  /** the API key as an audit actor: `api:<key name>`, or `<person> (api:<key name>)` for a key bound to a person */
  actor: Actor;
}

export interface HandlerResult {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RouteDef<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType> {
  method: Method;
  /** Express path, e.g. `/requests/:id/approve`; OpenAPI gets `{id}` */
  path: string;
  summary: string;
  tag: string;
  scope: ApiScope;
  body?: B;
  /** applied to the parsed JSON before `body` validates it (the OpenAPI document shows `body` alone) */
  prepareBody?: (raw: unknown) => unknown;
  query?: Q;
  /** schema of the success body, for the OpenAPI document */
  response?: z.ZodType;
  successStatus?: number;
  /** other success statuses the handler may answer with the same body, e.g. 200 for a repeat of a create */
  alsoStatus?: { status: number; description: string };
  handler: (input: HandlerInput<z.infer<B>, z.infer<Q>>) => Promise<HandlerResult | unknown>;
}

const isResult = (v: unknown): v is HandlerResult =>
  typeof v === 'object' && v !== null && ('status' in v || 'headers' in v) && 'body' in v;

/**
 * Routes are declared once with their zod schemas: the same schemas validate requests and generate the
 * OpenAPI 3.1 document, so the two cannot drift. The API-key middleware must set `res.locals.principal` first.
 */
export class RouteRegistry {
  readonly routes: RouteDef<any, any>[] = [];

  add<B extends z.ZodType, Q extends z.ZodType>(router: Router, def: RouteDef<B, Q>): void {
    // a write that takes no input still refuses input it does not know, like every other route
    if (!def.body && def.method !== 'get' && def.method !== 'delete') def = { ...def, body: z.strictObject({}) as unknown as B };
    this.routes.push(def as RouteDef<any, any>);
    router[def.method](def.path, async (req: Request, res: Response) => {
      const principal = res.locals.principal as ApiKeyPrincipal | undefined;
      if (!principal) throw new AppError('unauthenticated', 'Send an API key as `Authorization: Bearer <key>`.');
      requireScope(principal, def.scope);
      const body = def.body
        ? parseInput(def.body, def.prepareBody ? def.prepareBody(req.body ?? {}) : (req.body ?? {}), 'request body')
        : undefined;
      const query = def.query ? parseInput(def.query, req.query, 'query string') : undefined;
      // a key bound to a person acts as that person (named with the key, so the audit shows both)
      const label =
        principal.identityId && principal.identityLabel ? `${principal.identityLabel} (api:${principal.name})` : `api:${principal.name}`;
      const actor: Actor = { id: principal.identityId, label, channel: 'api' };
      const out = await def.handler({
        req,
        res,
        body: body as z.infer<B>,
        query: query as z.infer<Q>,
        params: req.params as Record<string, string>,
        principal,
        actor,
      });
      if (res.headersSent) return;
      const result: HandlerResult = isResult(out) ? out : { body: out };
      for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, v);
      const status = result.status ?? def.successStatus ?? 200;
      if (result.body === undefined) res.status(status).end();
      else res.status(status).json(result.body);
    });
  }

  /** OpenAPI 3.1 (its schemas are JSON Schema 2020-12, which zod emits directly). */
  openApiDocument(opts: { title: string; version: string; serverUrl: string; basePath: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const defs: Record<string, unknown> = {};
    for (const r of this.routes) {
      const oaPath = opts.basePath + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
      const params = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }));
      if (r.query) {
        const js = toJsonSchema(r.query, 'input', defs) as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, schema] of Object.entries(js.properties ?? {})) {
          params.push({ name, in: 'query', required: (js.required ?? []).includes(name), schema } as never);
        }
      }
      const op: Record<string, unknown> = {
        summary: r.summary,
        tags: [r.tag],
        operationId: `${r.method}${r.path.replace(/[/:{}-]+(\w)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
        security: [{ bearer: [r.scope] }],
        parameters: [
          ...params,
          ...(r.method === 'post'
            ? [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 } }]
            : []),
        ],
        responses: {
          [String(r.successStatus ?? 200)]: {
            description: 'Success',
            ...(r.response ? { content: { 'application/json': { schema: toJsonSchema(r.response, 'output', defs) } } } : {}),
          },
          ...(r.alsoStatus
            ? {
                [String(r.alsoStatus.status)]: {
                  description: r.alsoStatus.description,
                  ...(r.response ? { content: { 'application/json': { schema: toJsonSchema(r.response, 'output', defs) } } } : {}),
                },
              }
            : {}),
          default: { description: 'Error', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
        },
      };
      // a body that may be all-optional can be left out entirely (an empty POST parses as {})
      if (r.body)
        op.requestBody = {
          required: !r.body.safeParse({}).success,
          content: { 'application/json': { schema: toJsonSchema(r.body, 'input', defs) } },
        };
      (paths[oaPath] ??= {})[r.method] = op;
    }
    return {
      openapi: '3.1.0',
      info: { title: opts.title, version: opts.version },
      servers: [{ url: opts.serverUrl }],
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key from `signoff apikey create`' } },
        schemas: {
          ...defs,
          Problem: {
            type: 'object',
            required: ['type', 'title', 'status', 'code'],
            properties: {
              type: { type: 'string' },
              title: { type: 'string' },
              status: { type: 'integer' },
              detail: { type: 'string' },
              instance: { type: 'string' },
              code: { type: 'string', description: 'stable error code' },
              retryable: { type: 'boolean' },
              errors: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
            },
          },
        },
      },
    };
  }
}

/**
 * zod puts shared and recursive parts (e.g. z.json()) under a local `$defs` with `#/$defs/...` refs; embedded in
 * the OpenAPI document those refs would point at its root, so they move to components.schemas, named by content.
 */
function toJsonSchema(schema: z.ZodType, io: 'input' | 'output', components?: Record<string, unknown>): unknown {
  try {
    const js = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
    delete js.$schema;
    const defs = js.$defs as Record<string, unknown> | undefined;
    if (!defs) return js;
    delete js.$defs;
    const names: Record<string, string> = {};
    for (const [local, def] of Object.entries(defs)) {
      names[local] = `Def_${createHash('sha256').update(JSON.stringify(def)).digest('hex').slice(0, 12)}`;
    }
    const rewrite = (node: unknown): unknown => {
      if (Array.isArray(node)) return node.map(rewrite);
      if (!node || typeof node !== 'object') return node;
      return Object.fromEntries(
        Object.entries(node).map(([k, v]) => {
          const m = k === '$ref' && typeof v === 'string' ? /^#\/\$defs\/(.+)$/.exec(v) : null;
          return [k, m && names[m[1]!] ? `#/components/schemas/${names[m[1]!]}` : rewrite(v)];
        }),
      );
    };
    for (const [local, def] of Object.entries(defs)) if (components) components[names[local]!] = rewrite(def);
    return rewrite(js);
  } catch {
    return {};
  }
}
