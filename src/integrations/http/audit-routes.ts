import type { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { verifyAudit } from '../../core/audit-chain.ts';
import {
  inReadSnapshot,
  sealedAuditPage,
  unsealedAuditPage,
  type AuditExportFilter,
  type AuditExportRow,
} from '../../core/audit-queries.ts';
import type { Tx } from '../../db/database.ts';
import { auditEventSchema, pageOf, pageQuery, text } from './api-schemas.ts';
import type { RouteRegistry } from './route-registry.ts';

const toEvent = (r: AuditExportRow) => ({
  id: String(r.id),
  occurredAt: new Date(r.occurred_at).toISOString(),
  actor: { id: r.actor_id, label: r.actor_label, channel: r.channel },
  action: r.action,
  subjectType: r.subject_type,
  subjectId: r.subject_id,
  before: r.before,
  after: r.after,
  details: r.details,
  sealed: r.seq !== null,
  sequence: r.seq === null ? null : Number(r.seq),
  prevHash: r.prev_hash,
  hash: r.hash,
});

// sealed rows come in chain order and the cursor is the last sequence seen, so an incremental export never skips
// a row that committed late; `u<id>` continues into the tail of rows not sealed yet (by id), which comes last
const cursorSchema = z.string().regex(/^u?\d{1,18}$/, 'must be the nextCursor of a previous page');
const NDJSON_PAGE = 1000;

/** One page from a cursor: sealed rows first, then (with include=all) the unsealed tail. */
async function exportPage(
  tx: Tx,
  filter: AuditExportFilter,
  cursor: string | undefined,
  limit: number,
  withUnsealed: boolean,
): Promise<{ rows: AuditExportRow[]; next: string | null }> {
  const inTail = cursor?.startsWith('u') ?? false;
  const sealed = inTail ? [] : await sealedAuditPage(tx, filter, cursor ?? '0', limit + 1);
  if (sealed.length > limit) return { rows: sealed.slice(0, limit), next: sealed[limit - 1]!.seq };
  if (!withUnsealed) return { rows: sealed, next: null };
  const tail = await unsealedAuditPage(tx, filter, inTail ? cursor!.slice(1) : '0', limit - sealed.length + 1);
  const rows = [...sealed, ...tail].slice(0, limit);
  if (sealed.length + tail.length <= limit) return { rows, next: null };
  const last = rows.at(-1);
  // no room for the tail on this page: come back after the last sealed row
  return { rows, next: !last ? null : last.seq !== null ? last.seq : `u${last.id}` };
}

export function registerAuditRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'get',
    path: '/audit',
    tag: 'audit',
    scope: 'admin',
    summary:
      "Export the audit log in chain order (by sequence), with each row's hashes; rows not sealed yet come last, marked `sealed: false`. " +
      '`include=sealed` leaves them out (an incremental exporter then keeps the last nextCursor). `format=ndjson` streams every matching event, one per line.',
    query: z.strictObject({
      subjectType: text(32).optional(),
      subjectId: text(512).optional(),
      since: z.iso.datetime({ offset: true }).optional(),
      include: z.enum(['all', 'sealed']).default('all'),
      format: z.enum(['json', 'ndjson']).default('json'),
      limit: pageQuery.limit,
      cursor: cursorSchema.optional(),
    }),
    response: pageOf(auditEventSchema),
    handler: async ({ query, res }) => {
      const { format, limit, cursor, include, ...filter } = query;
      if (format === 'ndjson') {
        await inReadSnapshot(ctx.db, async (tx) => {
          res.status(200).type('application/x-ndjson');
          let at = cursor;
          for (;;) {
            const page = await exportPage(tx, filter, at, NDJSON_PAGE, include === 'all');
            for (const r of page.rows) res.write(`${JSON.stringify(toEvent(r))}\n`);
            if (!page.next) break;
            at = page.next;
          }
        });
        res.end();
        return undefined;
      }
      const page = await inReadSnapshot(ctx.db, (tx) => exportPage(tx, filter, cursor, limit, include === 'all'));
      return { items: page.rows.map(toEvent), nextCursor: page.next };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/audit/verify',
    tag: 'audit',
    scope: 'admin',
    summary:
      'Walk the sealed hash chain and report the first row that was removed, reordered or edited, and how many rows are not sealed yet.',
    response: z.object({
      ok: z.boolean(),
      checked: z.number().int(),
      unsealed: z.number().int(),
      head: z.object({ sequence: z.number().int(), hash: z.string() }),
      firstBroken: z.object({ id: z.string(), sequence: z.number().int(), reason: z.string() }).optional(),
    }),
    handler: () => verifyAudit(ctx.db),
  });
}
