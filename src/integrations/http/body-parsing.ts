import express, { type NextFunction, type Request, type Response } from 'express';
import { AppError } from '../../core/errors.ts';

const hasBody = (req: Request) => {
  const length = req.get('content-length');
  if (length !== undefined) return Number(length) > 0;
  return req.get('transfer-encoding') !== undefined;
};

const jsonType = /^application\/(?:[\w.+-]+\+)?json$/i;

/**
 * Bodies under /api/v1 are JSON or nothing. An empty POST (e.g. `/revoke`) is fine; a body of any other type
 * is 415 before a byte is parsed, so the parser never guesses.
 */
export function requireJsonBody() {
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (!hasBody(req)) return next();
    const type = (req.get('content-type') ?? '').split(';')[0]!.trim();
    if (!jsonType.test(type)) {
      return next(new AppError('unsupported_media_type', `Send the body as application/json${type ? ` (got ${type})` : ' (Content-Type is missing)'}.`, { contentType: type || null }));
    }
    next();
  };
}

/** express.json with the configured limit; strict, so a bare `"x"` or `1` is malformed rather than a body. */
export function jsonBody(limitBytes: number) {
  return express.json({ limit: limitBytes, strict: true, type: (req) => jsonType.test(((req.headers['content-type'] as string | undefined) ?? '').split(';')[0]!.trim()) });
}
