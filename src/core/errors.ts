/**
 * The one error taxonomy. Every edge (HTTP, Slack, Teams, CLI) maps an AppError once:
 * problem+json for HTTP, an ephemeral reply in chat, a line on stderr in the CLI.
 */
export const errorCatalog = {
  validation_failed: { status: 400, title: 'The input is not valid', retryable: false },
  malformed_json: { status: 400, title: 'The body is not valid JSON', retryable: false },
  unauthenticated: { status: 401, title: 'Authentication is required', retryable: false },
  forbidden: { status: 403, title: 'Not allowed', retryable: false },
  self_approval: { status: 403, title: 'Nobody approves their own request or change', retryable: false },
  not_an_approver: { status: 403, title: 'Only approvers of the current stage may decide', retryable: false },
  approver_required: { status: 403, title: 'A decision must name the person making it', retryable: false },
  not_requestable: { status: 403, title: 'This application cannot be requested by this user', retryable: false },
  identity_not_linked: { status: 403, title: 'This chat account is not linked to a directory identity', retryable: false },
  not_found: { status: 404, title: 'Not found', retryable: false },
  method_not_allowed: { status: 405, title: 'Method not allowed', retryable: false },
  conflict: { status: 409, title: 'Conflict', retryable: false },
  contended: { status: 409, title: 'The item changed while this was being decided; try again', retryable: true },
  already_decided: { status: 409, title: 'Already decided', retryable: false },
  already_pending: { status: 409, title: 'A pending item already exists', retryable: false },
  already_approved: { status: 409, title: 'Already approved', retryable: false },
  invalid_transition: { status: 409, title: 'This action is not possible in the current state', retryable: false },
  precondition_failed: { status: 412, title: 'The item is not at the version given in If-Match', retryable: false },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused with a different request', retryable: false },
  idempotency_in_progress: { status: 409, title: 'A request with this Idempotency-Key is still being processed', retryable: true },
  payload_too_large: { status: 413, title: 'The body is too large', retryable: false },
  unsupported_media_type: { status: 415, title: 'The body must be application/json', retryable: false },
  unsafe_url: { status: 422, title: 'The URL is not allowed', retryable: false },
  rate_limited: { status: 429, title: 'Too many requests', retryable: true },
  dependency_unavailable: { status: 503, title: 'A dependency is unavailable', retryable: true },
  // an unexpected failure is a bug until shown otherwise: retrying the same call is not advised
  internal: { status: 500, title: 'Internal error', retryable: false },
} as const;

export type ErrorCode = keyof typeof errorCatalog;

export class AppError extends Error {
  readonly status: number;
  readonly title: string;
  readonly retryable: boolean;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
    const entry = errorCatalog[code];
    this.status = entry.status;
    this.title = entry.title;
    this.retryable = entry.retryable;
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** Postgres unique violation on a named constraint or index. */
export function isUniqueViolation(e: unknown, constraint?: string): boolean {
  const err = e as { code?: string; constraint?: string; driverError?: { code?: string; constraint?: string } };
  const code = err?.code ?? err?.driverError?.code;
  const name = err?.constraint ?? err?.driverError?.constraint;
  return code === '23505' && (constraint === undefined || name === constraint);
}

// Postgres refusing or dropping connections: shutting down (57P01 admin, 57P02 crash), starting up or in recovery
// (57P03), the connection classes (08xxx), too many connections (53300), and the socket errors of a server that is away
const unavailableCodes = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '08P01',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);
// node-postgres reports a lost or never-made connection with a message and no code
const unavailableMessages =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is not established|connection timeout|Cannot use a pool after calling end/i;

/** Whether this is the database (or the network to it) being away, rather than a bug: answered 503, retryable. */
export function isDependencyUnavailable(e: unknown): boolean {
  type Thrown = { code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown };
  for (let err = e as Thrown | undefined, depth = 0; err && depth < 5; depth++) {
    if (err instanceof AppError) return false;
    if (typeof err.code === 'string' && unavailableCodes.has(err.code)) return true;
    if (typeof err.message === 'string' && unavailableMessages.test(err.message)) return true;
    err = (err.driverError ?? err.cause) as Thrown | undefined;
  }
  return false;
}

/** Postgres refusing a value (class 22, data exception: a NUL character, a malformed uuid or number, an overflow). */
function isDataException(e: unknown): boolean {
  const err = e as { code?: unknown; driverError?: { code?: unknown } };
  const code = err?.driverError?.code ?? err?.code;
  return typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code);
}

/** Converts anything thrown into an AppError, hiding internals of unexpected failures. */
export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  if (isDependencyUnavailable(e)) return new AppError('dependency_unavailable', 'The database is unavailable; try again shortly.');
  // the transaction was rolled back, so nothing changed: the input carried a value that cannot be stored or compared
  if (isDataException(e))
    return new AppError(
      'validation_failed',
      'A value in the input cannot be used (for example a NUL character, or a number or date out of range).',
    );
  return new AppError('internal', 'Something went wrong on our side; it has been logged.');
}
