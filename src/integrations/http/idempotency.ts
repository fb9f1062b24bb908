import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import type { ApiKeyPrincipal } from '../../core/api-keys.ts';
import { canonicalJson } from '../../core/canonical-json.ts';
import { AppError } from '../../core/errors.ts';
import { claimKey, completeKey, deleteExpiredKey, deleteKeysBefore, keyRow, reclaimKey, releaseKey } from './idempotency-queries.ts';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
// a claim this old without a response belongs to a process that died mid-request
const ABANDONED_AFTER_MS = 5 * 60 * 1000;
const SWEEP_EVERY_MS = 10 * 60 * 1000;
const replayedHeaders = ['content-type', 'location', 'etag'];
const validKey = /^[\x21-\x7e]{1,255}$/;

/**
 * Idempotency-Key on POST (draft-ietf-httpapi-idempotency-key-header). The claim is a row inserted with
 * ON CONFLICT DO NOTHING, so concurrent retries race in Postgres, not in memory. The response is stored
 * before it is sent, so a retry after the first response never sees "in progress". 5xx releases the key:
 * the client may retry a failure it could not have caused.
 */
export function idempotency(ctx: AppContext) {
  let lastSweep = 0;
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (req.method !== 'POST') return next();
    const key = req.get('idempotency-key');
    if (key === undefined) return next();
    if (!validKey.test(key)) {
      throw new AppError('validation_failed', 'Idempotency-Key must be 1 to 255 visible ASCII characters.', { field: 'Idempotency-Key' });
    }
    const principal = res.locals.principal as ApiKeyPrincipal;
    const now = ctx.clock.now();
    const path = req.originalUrl;
    const hash = createHash('sha256')
      .update(canonicalJson(req.body ?? null))
      .digest('hex');
    const db = ctx.db;

    if (now.getTime() - lastSweep > SWEEP_EVERY_MS) {
      lastSweep = now.getTime();
      void deleteKeysBefore(db, new Date(now.getTime() - IDEMPOTENCY_TTL_MS)).catch((e) =>
        ctx.logger.warn({ err: e }, 'idempotency key sweep failed'),
      );
    }
    await deleteExpiredKey(db, principal.id, key, new Date(now.getTime() - IDEMPOTENCY_TTL_MS));

    let claimed = await claimKey(db, { apiKeyId: principal.id, key, method: req.method, path, requestHash: hash, at: now });
    if (!claimed) {
      const row = await keyRow(db, principal.id, key);
      if (!row) {
        // released by a failed first attempt between our insert and select: the caller may simply retry
        throw new AppError('idempotency_in_progress', 'A request with this Idempotency-Key just finished with an error; retry it.');
      }
      if (row.method !== req.method || row.path !== path || row.request_hash !== hash) {
        throw new AppError(
          'idempotency_key_reused',
          `This Idempotency-Key was first used for ${row.method} ${row.path} with a different body; use a new key for a new request.`,
          { firstUsedFor: `${row.method} ${row.path}` },
        );
      }
      if (row.completed_at === null) {
        if (now.getTime() - new Date(row.created_at).getTime() > ABANDONED_AFTER_MS) {
          claimed = await reclaimKey(db, principal.id, key, now, row.created_at);
        }
        if (!claimed) {
          res.setHeader('Retry-After', '1');
          throw new AppError(
            'idempotency_in_progress',
            'The first request with this Idempotency-Key is still being processed; retry shortly.',
          );
        }
      } else {
        for (const [k, v] of Object.entries(row.response_headers ?? {})) res.setHeader(k, v);
        res.setHeader('Idempotent-Replayed', 'true');
        res.status(row.status_code!).send(Buffer.from(row.response_body ?? '', 'utf8'));
        return;
      }
    }

    captureResponse(
      res,
      async (status, headers, body) => {
        if (status >= 500) {
          await releaseKey(db, principal.id, key);
        } else {
          await completeKey(db, principal.id, key, { status, headers, body, at: ctx.clock.now() });
        }
      },
      (e) => ctx.logger.error({ err: e, key }, 'could not record the Idempotency-Key response'),
    );
    next();
  };
}

type EndArgs = [chunk?: unknown, encoding?: unknown, cb?: unknown];

/** Holds `res.end` until `persist` has run, so what a replay returns is written before the first response leaves. */
function captureResponse(
  res: Response,
  persist: (status: number, headers: Record<string, string>, body: string) => Promise<void>,
  onError: (e: unknown) => void,
): void {
  const originalEnd = res.end.bind(res) as (...args: EndArgs) => Response;
  let captured = false;
  res.end = ((...args: EndArgs) => {
    if (captured) return originalEnd(...args);
    captured = true;
    const chunk = typeof args[0] === 'function' ? undefined : args[0];
    const body = chunk == null ? '' : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
    const headers: Record<string, string> = {};
    for (const h of replayedHeaders) {
      const v = res.getHeader(h);
      if (v !== undefined) headers[h] = String(v);
    }
    persist(res.statusCode, headers, body)
      .catch(onError)
      .finally(() => originalEnd(...args));
    return res;
  }) as Response['end'];
}
