import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { AppError, toAppError } from '../../core/errors.ts';
import type { FieldProblem } from '../../core/validation.ts';

export const PROBLEM_BASE = 'https://signoff.dev/problems/';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: string;
  retryable: boolean;
  errors?: FieldProblem[];
  [extra: string]: unknown;
}

// RFC 9457 members and ours; a detail key with one of these names must not overwrite them
const reserved = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'retryable', 'errors']);

/** Flattens the core's field-error shapes (zod issues, `field`, policy `fields`) into one `errors` list. */
function fieldProblems(e: AppError): FieldProblem[] | undefined {
  const d = e.details ?? {};
  const out: FieldProblem[] = [];
  if (Array.isArray(d.errors)) out.push(...(d.errors as FieldProblem[]));
  if (typeof d.field === 'string') out.push({ field: d.field, message: e.message });
  const fields = d.fields as { justification?: string; answers?: Record<string, string>; unknown?: string[] } | undefined;
  if (fields && typeof fields === 'object') {
    if (fields.justification) out.push({ field: 'justification', message: fields.justification });
    for (const [id, message] of Object.entries(fields.answers ?? {})) out.push({ field: `answers.${id}`, message });
    for (const id of fields.unknown ?? []) out.push({ field: `answers.${id}`, message: 'is not a question of this application' });
  }
  return out.length ? out : undefined;
}

export function toProblem(e: AppError, instance: string): Problem {
  const problem: Problem = {
    type: `${PROBLEM_BASE}${e.code}`,
    title: e.title,
    status: e.status,
    detail: e.message,
    instance,
    code: e.code,
    retryable: e.retryable,
  };
  const errors = fieldProblems(e);
  if (errors) problem.errors = errors;
  for (const [k, v] of Object.entries(e.details ?? {})) {
    if (k === 'field' || k === 'fields' || v === undefined) continue;
    // the core reports the current state as `status`, which is the HTTP status here
    if (k === 'status') problem.currentStatus = v;
    else if (!reserved.has(k)) problem[k] = v;
  }
  return problem;
}

export function sendProblem(res: Response, problem: Problem, headers: Record<string, string> = {}): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  // a client that honours Retry-After comes back once a restarting database has had a moment
  if (problem.status === 503 && !res.getHeader('Retry-After')) res.setHeader('Retry-After', '5');
  if (problem.status === 401 && !res.getHeader('WWW-Authenticate')) res.setHeader('WWW-Authenticate', 'Bearer realm="signoff"');
  res.status(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

/** body-parser's errors carry a `type`; map them into the taxonomy rather than leaking its wording. */
export function fromBodyParser(e: unknown): AppError | undefined {
  const err = e as { type?: string; status?: number; limit?: number; charset?: string };
  switch (err?.type) {
    case 'entity.parse.failed':
      return new AppError(
        'malformed_json',
        `The body is not valid JSON: ${(e as Error).message.replace(/^Unexpected token.*?in JSON/, 'unexpected token')}.`,
      );
    case 'entity.too.large':
      return new AppError('payload_too_large', `The body is larger than ${err.limit} bytes.`, { limit: err.limit });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('unsupported_media_type', `The body must be UTF-8 JSON${err.charset ? ` (got charset ${err.charset})` : ''}.`);
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new AppError('validation_failed', 'The body could not be read completely.');
    default:
      // a body its Content-Encoding (gzip, deflate, br) does not describe: zlib refused it while it was read
      if (/^(?:Z_|ERR__ERROR_)/.test(String((e as { code?: unknown })?.code ?? ''))) {
        return new AppError('validation_failed', 'The body could not be decompressed as its Content-Encoding says.', {
          errors: [{ field: '(body)', message: 'is not what its Content-Encoding says' }],
        });
      }
      // the router could not decode a path segment (`%E0%A4%A`, `%zz`): the path is malformed, not our failure
      if (e instanceof URIError || (err?.status === 400 && /decode param/i.test((e as Error)?.message ?? ''))) {
        return new AppError('validation_failed', 'The path has a malformed percent-encoding.', {
          errors: [{ field: '(path)', message: 'is not valid percent-encoding' }],
        });
      }
      return undefined;
  }
}

/** The last middleware: everything thrown ends here and leaves as problem+json; unexpected errors are logged and hidden. */
export function problemErrorHandler(ctx: AppContext) {
  return (e: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const app = fromBodyParser(e) ?? toAppError(e);
    if (!(e instanceof AppError) && !fromBodyParser(e)) {
      const where = { err: e, requestId: res.locals.requestId, method: req.method, path: req.originalUrl };
      if (app.code === 'dependency_unavailable') ctx.logger.warn(where, 'HTTP request failed: a dependency is unavailable');
      else ctx.logger.error(where, 'unhandled error in HTTP request');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const problem = toProblem(app, req.originalUrl);
    // `requestId` in a problem names a Signoff request (conflicts); the HTTP request's id is the trace id
    if (res.locals.requestId) problem.traceId = res.locals.requestId;
    sendProblem(res, problem);
  };
}
