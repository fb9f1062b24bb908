import { parseRetryAfter } from '../webhooks/retry-policy.ts';

/**
 * The one failure type every connector throws, so the processor decides retry or give-up the same way for Intune
 * and Configuration Manager: 408, 429, 5xx and network errors are retried (429/503 no sooner than Retry-After), a
 * configuration problem (a group or model name that does not exist, a missing permission) is not.
 */
export class ConnectorError extends Error {
  readonly retryable: boolean;
  readonly retryAfterMs: number | null;
  readonly statusCode: number | null;
  /** the application's settings or the connection's rights are at fault: an administrator must act */
  readonly misconfigured: boolean;
  constructor(
    message: string,
    opts: { retryable: boolean; retryAfterMs?: number | null; statusCode?: number | null; misconfigured?: boolean },
  ) {
    super(message);
    this.name = 'ConnectorError';
    this.retryable = opts.retryable;
    this.retryAfterMs = opts.retryAfterMs ?? null;
    this.statusCode = opts.statusCode ?? null;
    this.misconfigured = opts.misconfigured ?? false;
  }
}

export const isRetryableStatus = (status: number) => status === 408 || status === 429 || status >= 500;

/** An HTTP failure as a ConnectorError; `what` says which call in words ("adding BOB-LAPTOP to group …"). */
export function httpFailure(what: string, status: number, detail: string, retryAfter: string | null | undefined): ConnectorError {
  const retryable = isRetryableStatus(status);
  const hint =
    status === 401
      ? ' (check the connection credentials)'
      : status === 403
        ? ' (the connection lacks a permission; see README, device-management connectors)'
        : '';
  return new ConnectorError(`${what}: HTTP ${status}${detail ? ` ${detail}` : ''}${hint}`, {
    retryable,
    statusCode: status,
    retryAfterMs: parseRetryAfter(retryAfter ?? null),
    misconfigured: status === 401 || status === 403,
  });
}

export function networkFailure(what: string, e: unknown): ConnectorError {
  const err = e as NodeJS.ErrnoException;
  return new ConnectorError(`${what}: ${err?.code ? `${err.code}: ` : ''}${err?.message ?? String(e)}`, { retryable: true });
}

/** Every call a connector made for one order, kept on the attempt so an administrator can see what happened. */
export class CallTrace {
  readonly lines: string[] = [];
  lastStatus: number | null = null;
  add(method: string, path: string, status: number | string): void {
    if (typeof status === 'number') this.lastStatus = status;
    this.lines.push(`${method} ${path} -> ${status}`);
  }
  note(text: string): void {
    this.lines.push(text);
  }
  toString(): string {
    return this.lines.join('\n');
  }
}
