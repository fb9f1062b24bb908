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
      return next(
        new AppError(
          'unsupported_media_type',
          `Send the body as application/json${type ? ` (got ${type})` : ' (Content-Type is missing)'}.`,
          { contentType: type || null },
        ),
      );
    }
    next();
  };
}

/** express.json with the configured limit; strict, so a bare `"x"` or `1` is malformed rather than a body. */
export function jsonBody(limitBytes: number) {
  return express.json({
    limit: limitBytes,
    strict: true,
    type: (req) => jsonType.test(((req.headers['content-type'] as string | undefined) ?? '').split(';')[0]!.trim()),
  });
}

const NUL = '\u0000';

/** Where in a parsed JSON body (or query) a NUL character hides, in keys or values; a few are enough to name. */
function nulFields(value: unknown, at: string, out: string[]): void {
  if (out.length >= 5) return;
  if (typeof value === 'string') {
    if (value.includes(NUL)) out.push(at || '(body)');
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => nulFields(v, `${at}${at ? '.' : ''}${i}`, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const field = `${at}${at ? '.' : ''}${k.replaceAll(NUL, '\\0')}`;
      if (k.includes(NUL)) out.push(field);
      else nulFields(v, field, out);
    }
  }
}

/**
 * NUL is no character of any text Signoff keeps (Postgres cannot store it in text): refused in the path, the query
 * and the body before any route runs, naming where it was.
 */
export function rejectNulCharacters() {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const fields: string[] = [];
    if (/%00/i.test(req.originalUrl.split('?')[0]!)) fields.push('(path)');
    nulFields(req.query, '', fields);
    nulFields(req.body, '', fields);
    if (fields.length === 0) return next();
    next(
      new AppError('validation_failed', `Text must not contain NUL characters (found in ${fields.join(', ')}).`, {
        errors: fields.map((field) => ({ field, message: 'must not contain NUL characters' })),
      }),
    );
  };
}
