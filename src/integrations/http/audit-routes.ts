import type { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { verifyAudit } from '../../core/audit-log.ts';
import { auditEventSchema, pageOf, pageQuery, text } from './api-schemas.ts';
import type { RouteRegistry } from './route-registry.ts';

interface AuditRow {
  id: string; occurred_at: Date; actor_id: string | null; actor_label: string; channel: string; action: string;
  subject_type: string; subject_id: string; before: unknown; after: unknown; details: unknown; prev_hash: string; hash: string;
}

const toEvent = (r: AuditRow) => ({
  id: String(r.id),
  occurredAt: new Date(r.occurred_at).toISOString(),
  actor: { id: r.actor_id, label: r.actor_label, channel: r.channel },
  action: r.action,
  subjectType: r.subject_type,
  subjectId: r.subject_id,
  before: r.before,
  after: r.after,
  details: r.details,
  prevHash: r.prev_hash,
  hash: r.hash,
});

// audit ids are a bigserial: the cursor is the last id seen, which also suits `jq`-driven exports
const cursorSchema = z.string().regex(/^\d{1,18}$/, 'must be the nextCursor of a previous page');
const NDJSON_PAGE = 1000;

export function registerAuditRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  const page = (filter: { subjectType?: string; subjectId?: string; since?: string }, after: string, limit: number) => {
    const where = ['id > $1'];
    const params: unknown[] = [after];
    if (filter.subjectType) where.push(`subject_type = $${params.push(filter.subjectType)}`);
    if (filter.subjectId) where.push(`subject_id = $${params.push(filter.subjectId)}`);
    if (filter.since) where.push(`occurred_at >= $${params.push(filter.since)}::timestamptz`);
    return ctx.db.query<AuditRow>(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${params.push(limit)}`, params);
  };

  registry.add(router, {
    method: 'get', path: '/audit', tag: 'audit', scope: 'admin',
    summary: 'Export the audit log in chain order, paginated by id; `format=ndjson` streams every matching event, one per line.',
    query: z.strictObject({
      subjectType: text(32).optional(),
      subjectId: text(512).optional(),
      since: z.iso.datetime({ offset: true }).optional(),
      format: z.enum(['json', 'ndjson']).default('json'),
      limit: pageQuery.limit,
      cursor: cursorSchema.optional(),
    }),
    response: pageOf(auditEventSchema),
    handler: async ({ query, res }) => {
      const { format, limit, cursor, ...filter } = query;
      if (format === 'ndjson') {
        res.status(200).type('application/x-ndjson');
        let after = cursor ?? '0';
        for (;;) {
          const rows = await page(filter, after, NDJSON_PAGE);
          for (const r of rows) res.write(`${JSON.stringify(toEvent(r))}\n`);
          if (rows.length < NDJSON_PAGE) break;
          after = String(rows.at(-1)!.id);
        }
        res.end();
        return undefined;
      }
      const rows = await page(filter, cursor ?? '0', limit + 1);
      const items = rows.slice(0, limit).map(toEvent);
      return { items, nextCursor: rows.length > limit ? items.at(-1)!.id : null };
    },
  });

  registry.add(router, {
    method: 'get', path: '/audit/verify', tag: 'audit', scope: 'admin',
    summary: 'Walk the hash chain and report the first row that was removed, reordered or edited.',
    response: z.object({ ok: z.boolean(), checked: z.number().int(), firstBroken: z.object({ id: z.string(), reason: z.string() }).optional() }),
    handler: () => verifyAudit(ctx.db),
  });
}
