import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { type ApiKeyPrincipal, verifyApiKey } from '../../core/api-keys.ts';
import { AppError } from '../../core/errors.ts';
import { sendProblem, toProblem } from './problem.ts';

const BEARER = /^Bearer[ \t]+([A-Za-z0-9._~+/=-]{8,512})[ \t]*$/i;

/**
 * Resolves `Authorization: Bearer <api key>` into `res.locals.principal`. Scopes are checked per route by the
 * registry; here only "who is calling". A 401 carries WWW-Authenticate as RFC 6750 asks.
 */
export function apiKeyAuth(ctx: AppContext) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const header = req.get('authorization');
    if (!header) {
      reject(
        req,
        res,
        new AppError('unauthenticated', 'Send an API key as `Authorization: Bearer <key>`; create one with `npx signoff apikey create`.'),
        'Bearer realm="signoff"',
      );
      return;
    }
    const m = BEARER.exec(header);
    if (!m) {
      reject(
        req,
        res,
        new AppError('unauthenticated', 'The Authorization header must be `Bearer <api key>`.'),
        'Bearer realm="signoff", error="invalid_request"',
      );
      return;
    }
    try {
      res.locals.principal = await resolveApiKey(ctx, m[1]!);
    } catch (e) {
      if (e instanceof AppError && e.code === 'unauthenticated') {
        reject(req, res, e, 'Bearer realm="signoff", error="invalid_token"');
        return;
      }
      throw e;
    }
    next();
  };
}

/** A presented key as this process resolves it: from what it keeps when it keeps keys. */
export function resolveApiKey(ctx: AppContext, presented: string): Promise<ApiKeyPrincipal> {
  return ctx.apiKeys ? ctx.apiKeys.verify(presented) : verifyApiKey(ctx.db, presented);
}

function reject(req: Request, res: Response, e: AppError, challenge: string): void {
  const problem = toProblem(e, req.originalUrl);
  if (res.locals.requestId) problem.traceId = res.locals.requestId;
  sendProblem(res, problem, { 'WWW-Authenticate': challenge });
}
