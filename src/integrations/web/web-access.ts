import type { Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import type { Actor } from '../../core/audit-log.ts';
import type { IdentityRow } from '../../core/directory.ts';
import { AppError } from '../../core/errors.ts';
import type { ChangeDetail, RequestDetail } from '../../core/views.ts';
import { changeVisibility, requestVisibility } from '../../core/visibility.ts';
import { sessionOf, type WebSession } from './sessions.ts';

/**
 * Who may open what on the web: the core's visibility rule (core/visibility.ts), the same in Teams; deciding is the
 * services' business. Admins are identities with `admin: true` in the catalog.
 */

export interface SignedIn extends WebSession {
  identity: IdentityRow;
}

export function signedIn(res: Response): SignedIn {
  const s = sessionOf(res);
  if (!s?.identity) throw new AppError('unauthenticated', 'Sign in first.');
  return s as SignedIn;
}

/** The web user as the core sees them: the person, on the 'web' channel. */
export const webActor = (s: SignedIn): Actor => ({ id: s.identity.id, label: s.identity.display_name, channel: 'web' });

export function requireAdmin(s: SignedIn): void {
  if (!s.isAdmin) throw new AppError('forbidden', 'Only admins can open the Admin pages (identities with admin: true in the catalog).');
}

// one answer for "not yours" and "no such request", so ids cannot be probed
const notFound = (id: string) => new AppError('not_found', `No request with id "${id}" that you can open.`);

export async function requireRequestAccess(
  ctx: AppContext,
  s: SignedIn,
  id: string,
): Promise<{ request: RequestDetail; approver: boolean }> {
  let request: RequestDetail;
  try {
    request = await ctx.requests.get(id);
  } catch (e) {
    if (e instanceof AppError && e.code === 'not_found') throw notFound(id);
    throw e;
  }
  // reviewers of its access (the policy's reviewers) open it from the Reviews page too
  const { allowed, approver } = await requestVisibility(ctx.db, s.identity.id, request, s.isAdmin);
  if (!allowed) throw notFound(id);
  return { request, approver };
}

export async function requireChangeAccess(ctx: AppContext, s: SignedIn, id: string): Promise<{ change: ChangeDetail; approver: boolean }> {
  let change: ChangeDetail;
  try {
    change = await ctx.changes.get(id);
  } catch (e) {
    if (e instanceof AppError && e.code === 'not_found') throw new AppError('not_found', `No change with id "${id}" that you can open.`);
    throw e;
  }
  const { allowed, approver } = await changeVisibility(ctx.db, s.identity.id, change, s.isAdmin);
  if (!allowed) throw new AppError('not_found', `No change with id "${id}" that you can open.`);
  return { change, approver };
}

/** A form field as one string (express.urlencoded gives an array when a name repeats). */
export const field = (req: Request, name: string): string | undefined => {
  const v = req.body?.[name];
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;
};

/** A free-text field: trimmed, and null when left empty (an empty box says nothing). */
export const textField = (req: Request, name: string): string | null => field(req, name)?.trim() || null;

/** A form field as a list (checkboxes). */
export const fields = (req: Request, name: string): string[] => {
  const v = req.body?.[name];
  return typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
};

/** A notice carried across a redirect after a successful form: only these words, never text from the URL. */
export const NOTICES: Record<string, string> = {
  submitted: 'Your request was sent to the approvers.',
  cancelled: 'The request was cancelled.',
  approved: 'Approved. Everyone who was asked sees the outcome.',
  recorded: 'Your approval is recorded; this stage needs more approvals.',
  stage_approved: 'This stage is approved; the request moved on to the next stage.',
  denied: 'Denied. The requester is told.',
  revoked: 'Revoked. The requester is told; the uninstall is ordered if the app was installed.',
  reapproved: 'Reapproved. The install is ordered.',
  change_approved: 'The change is approved.',
  change_rejected: 'The change is rejected.',
  kept: 'The access is kept.',
  removed: 'The access is removed.',
  redelivered: 'The delivery is being sent again.',
  key_revoked: 'The API key is revoked; it stops working at once.',
  signed_in: 'You are signed in.',
};

export const noticeOf = (req: Request): string | null => {
  const n = typeof req.query.notice === 'string' ? req.query.notice : undefined;
  return n && Object.hasOwn(NOTICES, n) ? NOTICES[n]! : null;
};
