import { createHash, randomBytes } from 'node:crypto';
import type { Database, Queryable } from '../db/database.ts';
import { readableUtc, type Clock } from './clock.ts';
import { identityById } from './directory.ts';
import { AppError, isAppError } from './errors.ts';
import { alreadyDecided, notThisStage } from './request-events.ts';
import type { RequestRow } from './request-queries.ts';
import type { RequestService } from './request-service.ts';

// refused with nothing decided: a missing reason, not in the group right now, the page was older than the request
const STILL_USABLE = new Set(['validation_failed', 'not_an_approver', 'identity_not_linked', 'precondition_failed']);

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

export interface LinkToken {
  id: string;
  request_id: string;
  approver_id: string;
  stage: number;
  action: 'approve' | 'deny';
  /** the request's version when the link was mailed (null: mailed before links remembered it) */
  version: number | null;
  expires_at: Date;
  used_at: Date | null;
  created_at: Date;
}

/** One-time approve/deny links for email. Only the hash is stored; the token lives in the mail alone. */
export async function createLinkToken(
  db: Queryable,
  input: {
    requestId: string;
    approverId: string;
    stage: number;
    version?: number;
    action: 'approve' | 'deny';
    expiresAt: Date;
    createdAt?: Date;
  },
): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await db.query(
    'INSERT INTO link_tokens (token_hash, request_id, approver_id, stage, version, action, expires_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,COALESCE($8, now()))',
    [
      hash(token),
      input.requestId,
      input.approverId,
      input.stage,
      input.version ?? null,
      input.action,
      input.expiresAt,
      input.createdAt ?? null,
    ],
  );
  return token;
}

/**
 * Looks a link up without consuming it (mail scanners follow GET links). A link whose prompt is settled says
 * who settled it and when, whether or not this link was the one used.
 */
export async function peekLinkToken(db: Queryable, token: string, now: Date): Promise<LinkToken> {
  const row = await db.maybeOne<LinkToken>('SELECT * FROM link_tokens WHERE token_hash = $1', [hash(token)]);
  if (!row) throw new AppError('not_found', 'This link is not valid.');
  const current = await db.maybeOne<Pick<RequestRow, 'id' | 'current_stage' | 'status' | 'decided_by_label' | 'decided_at'>>(
    'SELECT id, current_stage, status, decided_by_label, decided_at FROM requests WHERE id = $1',
    [row.request_id],
  );
  if (current && current.status !== 'pending') throw alreadyDecided(current);
  if (current && current.current_stage !== row.stage) throw await notThisStage(db, row.stage, current);
  if (row.used_at) throw new AppError('already_decided', `This link was already used at ${readableUtc(row.used_at)}.`);
  if (new Date(row.expires_at) <= now) throw new AppError('invalid_transition', 'This link has expired.');
  return row;
}

/**
 * Consumes the link and decides as the approver it was sent to. The link is spent even when the decision is
 * refused (already decided elsewhere), so it stops working once used.
 */
export async function useLinkToken(
  db: Database,
  requests: RequestService,
  clock: Clock,
  token: string,
  reason: string | null,
  opts: { expectedVersion?: number } = {},
) {
  const now = clock.now();
  const row = await db.maybeOne<LinkToken>(
    'UPDATE link_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING *',
    [hash(token), now],
  );
  if (!row) {
    await peekLinkToken(db, token, now);
    throw new AppError('already_decided', 'This link was already used.');
  }
  // the other link of the pair (approve vs deny) dies with this one
  await db.query('UPDATE link_tokens SET used_at = $3 WHERE request_id = $1 AND approver_id = $2 AND used_at IS NULL', [
    row.request_id,
    row.approver_id,
    now,
  ]);
  const approver = await identityById(db, row.approver_id);
  if (!approver) throw new AppError('not_found', 'The approver of this link no longer exists.');
  try {
    // a prompt's link decides that prompt only, checked in the read its write is guarded by: a request decided
    // meanwhile (by another link, a click or the API) is never revoked or reapproved by a link sent before
    return await requests.decide({ id: approver.id, label: approver.display_name, channel: 'email' }, row.request_id, row.action, reason, {
      stage: row.stage,
      denyNeedsReason: true,
      expectedVersion: opts.expectedVersion,
    });
  } catch (e) {
    // the page's version is the link's own bookkeeping, not an If-Match its user sent: a request decided since
    // the page was shown is "already decided", by whom and when, like any late link
    const d =
      isAppError(e) && e.code === 'precondition_failed'
        ? (e.details as { status?: string; decidedBy?: string | null; decidedAt?: string | null })
        : undefined;
    if (d?.status && d.status !== 'pending') {
      throw alreadyDecided({
        status: d.status as RequestRow['status'],
        decided_by_label: d.decidedBy ?? null,
        decided_at: d.decidedAt ? new Date(d.decidedAt) : null,
      });
    }
    // refused but nothing decided (a missing reason, not in the group right now): the pair stays usable
    if (isAppError(e) && STILL_USABLE.has(e.code)) {
      await db.query('UPDATE link_tokens SET used_at = NULL WHERE request_id = $1 AND approver_id = $2 AND stage = $3 AND used_at = $4', [
        row.request_id,
        row.approver_id,
        row.stage,
        now,
      ]);
    }
    throw e;
  }
}
