import type { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import {
  applicationInputSchema,
  approverGroupInputSchema,
  changePolicyInputSchema,
  deviceInputSchema,
  identityInputSchema,
  policyInputSchema,
  webhookInputSchema,
  type CatalogKind,
} from '../../core/catalog-schemas.ts';
import type { CatalogView } from '../../core/catalog-service.ts';
import { webhookEventTypes } from '../../core/events.ts';
import { deviceManagerStatusView } from './device-manager-routes.ts';
import type { RouteRegistry } from './route-registry.ts';

/**
 * Admin CRUD over the catalog and directory. Every write goes through CatalogService, which checks
 * references and audits in the same transaction as the change; these routes only translate HTTP.
 */

const meta = { id: z.string(), createdAt: z.iso.datetime(), updatedAt: z.iso.datetime() };
const webhookView = z.object({
  ...meta,
  name: z.string(),
  url: z.string(),
  events: z.array(z.enum(webhookEventTypes)),
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  secretHint: z.string().describe('the last characters of the signing secret; the secret itself is shown only when it is set'),
});
const withSecret = webhookView.extend({ secret: z.string().optional().describe('the signing secret, returned only when it was just set') });

interface Resource {
  kind: CatalogKind;
  path: string;
  tag: string;
  noun: string;
  refHint: string;
  body: z.ZodType;
  view: z.ZodType;
}

/** What an input leaves out, a view shows as null: the documented response types say so. */
const viewShape = (shape: z.ZodRawShape): z.ZodRawShape =>
  Object.fromEntries(
    Object.entries(shape).map(([k, v]) => [k, v instanceof z.ZodOptional ? (v.unwrap() as z.ZodType).nullable().optional() : v]),
  );

const resources: Resource[] = [
  {
    kind: 'identities',
    path: '/identities',
    tag: 'identities',
    noun: 'identity',
    refHint: 'id or username (URL-encoded, e.g. CONTOSO%5Cbob)',
    body: identityInputSchema,
    view: z.object({ ...meta, ...viewShape(identityInputSchema.shape) }),
  },
  {
    kind: 'devices',
    path: '/devices',
    tag: 'devices',
    noun: 'device',
    refHint: 'id or client GUID',
    body: deviceInputSchema,
    view: z.object({ ...meta, ...viewShape(deviceInputSchema.shape) }),
  },
  {
    kind: 'approverGroups',
    path: '/approver-groups',
    tag: 'approver-groups',
    noun: 'approver group',
    refHint: 'id or name',
    body: approverGroupInputSchema,
    view: z.object({ ...meta, ...viewShape(approverGroupInputSchema.shape) }),
  },
  {
    kind: 'policies',
    path: '/policies',
    tag: 'policies',
    noun: 'policy',
    refHint: 'id or name',
    body: policyInputSchema,
    view: z.object({ ...meta, inline: z.boolean(), ...viewShape(policyInputSchema.shape) }),
  },
  {
    kind: 'applications',
    path: '/applications',
    tag: 'applications',
    noun: 'application',
    refHint: 'the model id, URL-encoded (ScopeId_...%2FApplication_...)',
    body: applicationInputSchema,
    view: z.object({
      ...meta,
      requestable: z.boolean(),
      ...viewShape(applicationInputSchema.shape),
      deviceManagerStatus: deviceManagerStatusView.nullable(),
    }),
  },
  {
    kind: 'changePolicies',
    path: '/change-policies',
    tag: 'change-policies',
    noun: 'change policy',
    refHint: 'id or name',
    body: changePolicyInputSchema,
    view: z.object({ ...meta, ...viewShape(changePolicyInputSchema.shape) }),
  },
  {
    kind: 'webhooks',
    path: '/webhooks',
    tag: 'webhooks',
    noun: 'webhook endpoint',
    refHint: 'id or name',
    body: webhookInputSchema,
    view: webhookView,
  },
];

/**
 * A PUT body as GET returned it, edited: what only a read shows (id, times, observed state) is dropped, and so is a
 * null GET gives an unset optional field, so GET, edit, PUT replaces the object as the edit says. A field that is
 * neither is still refused as unknown.
 */
function readBack(r: Resource): (raw: unknown) => unknown {
  const input = new Set(Object.keys((r.body as unknown as z.ZodObject).shape));
  const readOnly = new Set(Object.keys((r.view as unknown as z.ZodObject).shape).filter((k) => !input.has(k)));
  return (raw) => {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
    return Object.fromEntries(Object.entries(raw).filter(([k, v]) => !readOnly.has(k) && !(v === null && input.has(k))));
  };
}

const locationOf = (r: Resource, item: CatalogView) => `/api/v1${r.path}/${encodeURIComponent(item.id)}`;

export function registerAdminRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  const { catalog } = ctx;
  for (const r of resources) {
    const isWebhook = r.kind === 'webhooks';
    registry.add(router, {
      method: 'get',
      path: r.path,
      tag: r.tag,
      scope: 'admin',
      summary: `List every ${r.noun}.`,
      response: z.object({ items: z.array(r.view) }),
      handler: async () => ({ items: await catalog.list(r.kind) }),
    });
    registry.add(router, {
      method: 'get',
      path: `${r.path}/:ref`,
      tag: r.tag,
      scope: 'admin',
      summary: `Get one ${r.noun} by ${r.refHint}.`,
      response: r.view,
      handler: async ({ params }) => catalog.get(r.kind, params.ref!),
    });
    registry.add(router, {
      method: 'post',
      path: r.path,
      tag: r.tag,
      scope: 'admin',
      summary: `Create a ${r.noun}; 409 if it already exists.${isWebhook ? ' The signing secret (generated when not given) is returned once.' : ''}`,
      body: r.body,
      response: isWebhook ? withSecret : r.view,
      successStatus: 201,
      handler: async ({ body, actor }) => {
        const result = isWebhook
          ? await catalog.upsertWebhook(body as never, actor, { mode: 'create' })
          : await catalog.upsert(r.kind, body, actor, { mode: 'create' });
        const out = 'secret' in result && result.secret ? { ...result.item, secret: result.secret } : result.item;
        return { status: 201, body: out, headers: { Location: locationOf(r, result.item) } };
      },
    });
    registry.add(router, {
      method: 'put',
      path: `${r.path}/:ref`,
      tag: r.tag,
      scope: 'admin',
      summary: `Create or replace a ${r.noun} (${r.refHint}); 201 when created, 200 when replaced or unchanged. Takes what GET returned, edited (its read-only fields and nulls are ignored).`,
      body: r.body,
      prepareBody: readBack(r),
      response: isWebhook ? withSecret : r.view,
      handler: async ({ body, actor, params }) => {
        const opts = { mode: 'upsert' as const, ref: params.ref! };
        const result = isWebhook
          ? await catalog.upsertWebhook(body as never, actor, opts)
          : await catalog.upsert(r.kind, body, actor, opts);
        const out = 'secret' in result && result.secret ? { ...result.item, secret: result.secret } : result.item;
        return result.outcome === 'created'
          ? { status: 201, body: out, headers: { Location: locationOf(r, result.item) } }
          : { status: 200, body: out, headers: { 'Signoff-Outcome': result.outcome } };
      },
    });
    registry.add(router, {
      method: 'delete',
      path: `${r.path}/:ref`,
      tag: r.tag,
      scope: 'admin',
      summary: `Delete a ${r.noun}; 409 while anything still refers to it.`,
      successStatus: 204,
      handler: async ({ params, actor }) => {
        await catalog.delete(r.kind, params.ref!, actor);
        return { status: 204, body: undefined };
      },
    });
  }

  registry.add(router, {
    method: 'post',
    path: '/webhooks/:ref/rotate-secret',
    tag: 'webhooks',
    scope: 'admin',
    summary: 'Replace the signing secret of a webhook endpoint; the new secret is returned once.',
    response: withSecret,
    handler: async ({ params, actor }) => {
      const { item, secret } = await catalog.rotateWebhookSecret(params.ref!, actor);
      return { ...item, secret };
    },
  });
}
