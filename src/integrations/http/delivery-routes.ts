import type { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { AppError } from '../../core/errors.ts';
import { deliveryAttempts, deliveryById, endpointBacklog, listDeliveries, type DeliveryRow } from '../../core/delivery-queries.ts';
import { isUuid } from '../../core/request-queries.ts';
import type { Queryable } from '../../db/database.ts';
import { queuesFor } from '../queue/queues.ts';
import { gateFor } from '../webhooks/endpoint-gate.ts';
import { redeliver } from '../webhooks/redelivery.ts';
import type { RouteRegistry } from './route-registry.ts';

const statusSchema = z.enum(['pending', 'succeeded', 'failed']);

const targetSchema = z.enum(['webhook', 'intune', 'configmgr']);
const deliveryView = z.object({
  id: z.string(),
  messageId: z.string().describe('the webhook-id header, the same on every attempt'),
  target: targetSchema.describe('a webhook endpoint, or the device-management connector of an application'),
  endpoint: z
    .object({ id: z.string(), name: z.string(), url: z.string(), enabled: z.boolean() })
    .nullable()
    .describe('null for connector orders'),
  applicationId: z.string().nullable().describe('for connector orders: the application whose connector carries them out'),
  outboxId: z.string().nullable(),
  eventType: z.string(),
  status: statusSchema,
  attempts: z
    .number()
    .int()
    .describe(
      "attempts since it was last queued: a redelivery starts counting again, with a fresh retry budget (the detail's attemptLog holds every attempt ever made)",
    ),
  nextAttemptAt: z.string().nullable(),
  lastStatusCode: z.number().int().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  completedAt: z.string().nullable(),
});
const attemptView = z.object({
  attempt: z.number().int(),
  statusCode: z.number().int().nullable(),
  latencyMs: z.number().int(),
  responseExcerpt: z.string().nullable(),
  error: z.string().nullable(),
  at: z.string(),
});
const detailView = deliveryView.extend({ payload: z.unknown(), attemptLog: z.array(attemptView) });

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

function toView(r: DeliveryRow): z.infer<typeof deliveryView> {
  return {
    id: r.id,
    messageId: r.message_id,
    target: r.connector ?? 'webhook',
    applicationId: r.application_id,
    endpoint: r.endpoint_id ? { id: r.endpoint_id, name: r.endpoint_name!, url: r.endpoint_url!, enabled: r.endpoint_enabled! } : null,
    outboxId: r.outbox_id,
    eventType: r.event_type,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: iso(r.next_attempt_at),
    lastStatusCode: r.last_status_code,
    lastError: r.last_error,
    createdAt: iso(r.created_at)!,
    completedAt: iso(r.completed_at),
  };
}

async function detail(db: Queryable, id: string): Promise<z.infer<typeof detailView>> {
  if (!isUuid(id)) throw new AppError('not_found', `No delivery with id "${id}".`);
  const row = await deliveryById(db, id);
  if (!row) throw new AppError('not_found', `No delivery with id "${id}".`);
  const attempts = await deliveryAttempts(db, id);
  return {
    ...toView(row),
    payload: JSON.parse(row.body),
    attemptLog: attempts.map((a) => ({
      attempt: a.attempt,
      statusCode: a.status_code,
      latencyMs: a.latency_ms,
      responseExcerpt: a.response_excerpt,
      error: a.error,
      at: iso(a.created_at)!,
    })),
  };
}

const encodeCursor = (ts: string, id: string) => Buffer.from(`${ts}|${id}`).toString('base64url');
function decodeCursor(c: string): [string, string] {
  const [ts, id] = Buffer.from(c, 'base64url').toString().split('|');
  if (!ts || !id || Number.isNaN(Date.parse(ts)) || !isUuid(id))
    throw new AppError('validation_failed', 'The cursor is not one this API returned.', { field: 'cursor' });
  return [ts, id];
}

const circuitView = z.object({
  state: z.enum(['closed', 'open', 'half_open']).describe('open: attempts wait until openUntil; half_open: one probe decides'),
  consecutiveFailures: z.number().int(),
  openUntil: z.string().nullable(),
  inFlight: z
    .number()
    .int()
    .describe(
      'slots held now, over all workers: attempts running, and slots a worker has leased for its next attempts (given back within half a second when unused)',
    ),
  concurrencyLimit: z.number().int(),
  timesOpened: z.number().int(),
});
const endpointHealthView = z.object({
  endpoint: z.object({ id: z.string(), name: z.string(), url: z.string(), enabled: z.boolean() }),
  circuit: circuitView,
  pendingDeliveries: z.number().int(),
  oldestPendingAt: z.string().nullable(),
});

/** Webhook deliveries: what was sent where, every attempt, and redelivery of the ones that failed. */
export function registerDeliveryRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'get',
    path: '/webhooks/:ref/health',
    tag: 'webhooks',
    scope: 'admin',
    summary: 'Delivery health of one webhook endpoint (id or name): its circuit breaker, attempts in flight and pending deliveries.',
    response: endpointHealthView,
    handler: async ({ params }) => {
      const ref = params.ref!;
      const e = await endpointBacklog(ctx.db, ref);
      if (!e) throw new AppError('not_found', `No webhook endpoint "${ref}".`);
      const gate = gateFor(ctx, queuesFor(ctx).connection);
      const c = (await gate.view([e.id])).get(e.id)!;
      return {
        endpoint: { id: e.id, name: e.name, url: e.url, enabled: e.enabled },
        circuit: { ...c, concurrencyLimit: gate.settings.concurrency },
        pendingDeliveries: Number(e.pending),
        oldestPendingAt: iso(e.oldest),
      };
    },
  });
  registry.add(router, {
    method: 'get',
    path: '/deliveries',
    tag: 'deliveries',
    scope: 'admin',
    summary:
      'List deliveries (webhooks and device-manager connector orders), newest first; filter by status, target, endpoint (id or name), event type or, for connector orders, application.',
    query: z.strictObject({
      status: statusSchema.optional(),
      target: targetSchema.optional(),
      applicationId: z
        .string()
        .max(300)
        .optional()
        .describe("a device-manager connector's orders for this application (webhook deliveries carry no application)"),
      endpoint: z.string().max(200).optional(),
      eventType: z.string().max(100).optional(),
      limit: z.coerce.number().int().min(1).max(200).default(50),
      cursor: z.string().max(200).optional(),
    }),
    response: z.object({ items: z.array(deliveryView), nextCursor: z.string().nullable() }),
    handler: async ({ query }) => {
      const { limit, cursor, ...filter } = query;
      const rows = await listDeliveries(ctx.db, { ...filter, before: cursor ? decodeCursor(cursor) : undefined }, limit + 1);
      const last = rows.length > limit ? rows[limit - 1]! : undefined;
      return { items: rows.slice(0, limit).map(toView), nextCursor: last ? encodeCursor(last.cursor_ts, last.id) : null };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/deliveries/:id',
    tag: 'deliveries',
    scope: 'admin',
    summary: 'One delivery with its payload and every attempt (status, latency, response excerpt).',
    response: detailView,
    handler: async ({ params }) => detail(ctx.db, params.id!),
  });

  registry.add(router, {
    method: 'post',
    path: '/deliveries/:id/redeliver',
    tag: 'deliveries',
    scope: 'admin',
    summary:
      "Send a finished (usually failed) delivery again, with the same webhook-id and body; a connector order runs again with the application's current settings.",
    response: detailView,
    successStatus: 202,
    handler: async ({ params, actor }) => {
      const id = params.id!;
      await redeliver(ctx, actor, id);
      return detail(ctx.db, id);
    },
  });
}
