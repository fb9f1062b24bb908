import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiRouter } from '../../src/integrations/http/app.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(() => h.close());

const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** Every local `$ref` in the document points at something. */
function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => refs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

describe('OpenAPI document', () => {
  it('is public, OpenAPI 3.1 in shape, and lists every route the API serves', async () => {
    const res = await request(h.app).get('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas.Problem.required).toEqual(expect.arrayContaining(['type', 'title', 'status', 'code']));

    const { registry } = buildApiRouter(h.t.ctx);
    const expected = registry.routes.map((r) => `${r.method} /api/v1${r.path.replace(/:(\w+)/g, '{$1}')}`).sort();
    const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, item]) =>
        Object.keys(item)
          .filter((m) => methods.includes(m))
          .map((m) => `${m} ${path}`),
      )
      .sort();
    expect(listed).toEqual(expected);
    for (const route of [
      'post /api/v1/approved-requests',
      'post /api/v1/requests',
      'get /api/v1/requests',
      'get /api/v1/requests/{id}',
      'post /api/v1/requests/{id}/approve',
      'post /api/v1/requests/{id}/deny',
      'post /api/v1/requests/{id}/cancel',
      'post /api/v1/requests/{id}/revoke',
      'post /api/v1/requests/{id}/install',
      'post /api/v1/changes',
      'get /api/v1/changes',
      'get /api/v1/changes/{id}',
      'post /api/v1/changes/{id}/approve',
      'post /api/v1/changes/{id}/reject',
      'post /api/v1/changes/{id}/cancel',
      'get /api/v1/audit',
      'get /api/v1/audit/verify',
    ])
      expect(listed).toContain(route);

    const operationIds = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      expect(path.startsWith('/')).toBe(true);
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(item)) {
        expect(methods).toContain(method);
        expect(op.operationId).toEqual(expect.any(String));
        expect(operationIds.has(op.operationId), op.operationId).toBe(false);
        operationIds.add(op.operationId);
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const code of Object.keys(op.responses)) expect(code).toMatch(/^([1-5]\d\d|[1-5]XX|default)$/);
        const pathParams = op.parameters.filter((p: any) => p.in === 'path').map((p: any) => p.name);
        expect(pathParams.sort()).toEqual([...templated].sort());
        for (const p of op.parameters) {
          expect(['query', 'header', 'path', 'cookie']).toContain(p.in);
          if (p.in === 'path') expect(p.required).toBe(true);
        }
        if (method === 'post') expect(op.parameters.map((p: any) => p.name)).toContain('Idempotency-Key');
        if (op.requestBody) expect(op.requestBody.content['application/json'].schema).toBeTypeOf('object');
        expect(op.security).toEqual([{ bearer: [expect.any(String)] }]);
      }
    }
    for (const ref of refs(doc)) {
      expect(ref.startsWith('#/')).toBe(true);
      const target = ref
        .slice(2)
        .split('/')
        .reduce((node: any, key) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      expect(target, ref).toBeDefined();
    }
    // strict bodies say so, which is how clients learn that unknown fields are refused
    const submit = doc.paths['/api/v1/requests'].post.requestBody.content['application/json'].schema;
    expect(submit).toMatchObject({
      type: 'object',
      additionalProperties: false,
      required: expect.arrayContaining(['applicationId', 'username']),
    });
    // what the server answers is what the document says: a repeat CreateApprovedRequest is 200, empty fields are null
    expect(Object.keys(doc.paths['/api/v1/approved-requests'].post.responses).sort()).toEqual(['200', '201', 'default']);
    const app = doc.paths['/api/v1/applications/{ref}'].get.responses['200'].content['application/json'].schema;
    expect(app.properties.description.anyOf).toContainEqual({ type: 'null' });
    expect(app.properties.installWindow.anyOf).toContainEqual({ type: 'null' });
  });
});
