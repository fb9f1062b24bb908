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
/** deeper than any body of the API's schemas; a deeper one is refused before anything walks it recursively */
export const MAX_JSON_DEPTH = 64;
// half a surrogate pair (matched on UTF-16 code units: no `u` flag)
const UNPAIRED = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

interface TextProblems {
  /** where a NUL hides, in keys or values (a few are enough to name) */
  nul: string[];
  /** where text holds half a UTF-16 surrogate pair, which no UTF-8 text can keep */
  unpaired: string[];
  tooDeep: boolean;
}

/** Walks a parsed JSON body (or query) without recursion, so any nesting is refused rather than overflowing the stack. */
function textProblems(root: unknown): TextProblems {
  const out: TextProblems = { nul: [], unpaired: [], tooDeep: false };
  const note = (text: string, field: string) => {
    if (text.includes(NUL) && out.nul.length < 5) out.nul.push(field || '(body)');
    if (UNPAIRED.test(text) && out.unpaired.length < 5) out.unpaired.push(field || '(body)');
  };
  const stack: { value: unknown; at: string; depth: number }[] = [{ value: root, at: '', depth: 0 }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const { value, at, depth } = item;
    if (typeof value === 'string') note(value, at);
    else if (value && typeof value === 'object') {
      if (depth >= MAX_JSON_DEPTH) {
        out.tooDeep = true;
        return out;
      }
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
      for (const [k, v] of entries.reverse()) {
        const field = `${at}${at ? '.' : ''}${k.replaceAll(NUL, '\\0')}`;
        if (k.includes(NUL) || UNPAIRED.test(k)) note(k, field);
        else stack.push({ value: v, at: field, depth: depth + 1 });
      }
    }
  }
  return out;
}

/**
 * Text Signoff keeps has no NUL (Postgres cannot store it in text) and no half surrogate pair (stored as U+FFFD, it
 * would not be what was sent): refused in the path, the query and the body before any route runs, naming where.
 * So is a body nested deeper than any schema goes.
 */
export function rejectUnstorableText() {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const query = textProblems(req.query);
    const body = textProblems(req.body);
    if (query.tooDeep || body.tooDeep) {
      return next(
        new AppError('validation_failed', `The ${body.tooDeep ? 'body' : 'query'} is nested more than ${MAX_JSON_DEPTH} levels deep.`),
      );
    }
    const nul = [...(/%00/i.test(req.originalUrl.split('?')[0]!) ? ['(path)'] : []), ...query.nul, ...body.nul];
    const unpaired = [...query.unpaired, ...body.unpaired];
    if (nul.length === 0 && unpaired.length === 0) return next();
    const message = [
      nul.length ? `NUL characters (found in ${nul.join(', ')})` : '',
      unpaired.length ? `unpaired UTF-16 surrogates (found in ${unpaired.join(', ')})` : '',
    ].filter(Boolean);
    next(
      new AppError('validation_failed', `Text must not contain ${message.join(' or ')}.`, {
        errors: [
          ...nul.map((field) => ({ field, message: 'must not contain NUL characters' })),
          ...unpaired.map((field) => ({ field, message: 'must not contain unpaired UTF-16 surrogates' })),
        ],
      }),
    );
  };
}
