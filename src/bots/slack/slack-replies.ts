import type { AppContext } from '../../app-context.ts';
import { appendAuditAlone, type Actor } from '../../core/audit-log.ts';
import { identityBySlackId, type IdentityRow } from '../../core/directory.ts';
import { isAppError, isDependencyUnavailable, toAppError } from '../../core/errors.ts';
import { SlackApiError, type Blocks, type SlackApi } from './slack-api.ts';
import { esc, plainDates, section, slackDate } from './slack-format.ts';
import type { SlackNotifier } from './slack-notifier.ts';
import { notifierActor } from '../../notifications/message-store.ts';

/** What every Slack handler is given. */
export interface SlackDeps {
  ctx: AppContext;
  api: SlackApi;
  notifier: SlackNotifier;
  /** origins a response_url may point at: Slack's hooks host, plus the configured API host (tests, proxies) */
  responseOrigins: Set<string>;
  modalBudgetMs: number;
}

export const actorOf = (who: IdentityRow): Actor => ({ id: who.id, label: who.display_name, channel: 'slack' });

export const resolveUser = async (deps: SlackDeps, slackUserId: string) => identityBySlackId(deps.ctx.db, slackUserId);

export function notLinkedText(slackUserId: string): string {
  return (
    `:link: Your Slack account is not linked to a Signoff identity yet, so Signoff cannot tell who you are in the directory.\n` +
    `Ask a Signoff admin to add \`slack: ${slackUserId}\` to your entry under \`identities:\` in the Signoff configuration file and apply it ` +
    `(\`npx signoff apply FILE\`), or to set it through the admin API (\`/api/v1/identities\`). Then try again.`
  );
}

/**
 * The one place an error becomes words in Slack. AppErrors carry user-safe messages; anything else is
 * logged and shown as a generic failure so internals never leak into a channel.
 */
export const UNAVAILABLE_TEXT =
  ':hourglass: Signoff cannot reach its database right now, so it could not do that. Please try again in a minute.';

export function errorText(e: unknown, slackUserId: string): string {
  if (e instanceof SlackApiError) {
    return e.transient
      ? ':hourglass: Slack is busy right now; please try again in a moment.'
      : ':warning: Slack refused the request; please try again.';
  }
  const err = toAppError(e);
  const d = (err.details ?? {}) as { decidedBy?: string | null; decidedAt?: string | null; status?: string };
  switch (err.code) {
    case 'already_decided':
      // a request still pending was not decided: an earlier stage of it was (the message says by whom)
      if ((d.decidedAt || d.decidedBy) && d.status !== 'pending') {
        return `:information_source: Already decided: this was *${esc(String(d.status ?? 'decided'))}* by *${esc(d.decidedBy ?? 'someone')}* ${slackDate(d.decidedAt)}. Nothing was changed.`;
      }
      return `:information_source: ${esc(err.message)}${d.status === 'pending' ? ' Nothing was changed.' : ''}`;
    case 'precondition_failed':
      return `:information_source: ${esc(err.message)} Nothing was changed.`;
    case 'self_approval':
      return `:no_entry: ${esc(err.message)} Another approver has to decide it.`;
    case 'not_an_approver':
      return `:no_entry: ${esc(err.message)} You are not one of them, so your click changed nothing.`;
    case 'identity_not_linked':
      return notLinkedText(slackUserId);
    case 'dependency_unavailable':
      return UNAVAILABLE_TEXT;
    case 'internal':
      return `:warning: ${esc(err.message)}`;
    default:
      return `:warning: ${esc(err.message)}`;
  }
}

export function logUnexpected(deps: SlackDeps, e: unknown, what: string): void {
  if (isAppError(e)) return;
  deps.ctx.logger.error({ err: e instanceof Error ? { message: e.message, stack: e.stack } : e }, `slack: ${what} failed`);
}

export interface ReplyTarget {
  user: string;
  channel?: string | null;
  responseUrl?: string | null;
}

/**
 * Says something only the user sees: in the channel they acted in when Signoff can post there, else
 * through the response_url Slack gave us, else in the user's DM with the app.
 */
export async function replyPrivately(deps: SlackDeps, to: ReplyTarget, text: string, blocks?: Blocks): Promise<void> {
  const allBlocks = blocks ?? [section(text)];
  const plainText = plainDates(text);
  if (
    to.channel &&
    (await attempt(deps, 'ephemeral', () =>
      deps.api.postEphemeral({ channel: to.channel!, user: to.user, text: plainText, blocks: allBlocks }),
    ))
  ) {
    return auditPrivate(deps, 'chat.postEphemeral', to.channel, to.user, plainText);
  }
  if (
    to.responseUrl &&
    isAllowedResponseUrl(deps, to.responseUrl) &&
    (await attempt(deps, 'response_url', () =>
      deps.api.respond(to.responseUrl!, { response_type: 'ephemeral', replace_original: false, text: plainText, blocks: allBlocks }),
    ))
  ) {
    return auditPrivate(deps, 'response_url', to.channel ?? null, to.user, plainText);
  }
  const dm = await deps.api.openDm(to.user);
  const { ts } = await deps.api.postMessage({ channel: dm, text: plainText, blocks: allBlocks });
  await auditPrivate(deps, 'chat.postMessage', dm, to.user, plainText, ts);
}

/** One way of reaching the user; false (logged) when Slack refused it, so the next way is tried. */
async function attempt(deps: SlackDeps, way: string, send: () => Promise<unknown>): Promise<boolean> {
  try {
    await send();
    return true;
  } catch (e) {
    deps.ctx.logger.debug({ err: (e as Error).message }, `slack: ${way} failed, falling back`);
    return false;
  }
}

/** Replies only one person sees are messages Signoff sent too, so they are in the audit log like the rest. */
async function auditPrivate(
  deps: SlackDeps,
  method: string,
  channel: string | null,
  user: string,
  text: string,
  ts?: string,
): Promise<void> {
  const { db, clock } = deps.ctx;
  try {
    // commits by itself, in one INSERT with the other replies sent at the same moment
    await appendAuditAlone(db, {
      actor: notifierActor('slack'),
      action: 'message.sent',
      subjectType: 'conversation',
      subjectId: channel ?? user,
      at: clock.now(),
      details: { platform: 'slack', method, private: true, channel, to: user, ts: ts ?? null, text: text.slice(0, 500) },
    });
  } catch (e) {
    // the reply is out (often the one saying the database is away): losing its audit row must not lose the answer
    if (!isDependencyUnavailable(e)) throw e;
    deps.ctx.logger.warn({ err: (e as Error).message, channel, user }, 'slack: private reply sent but not audited (database unavailable)');
  }
}

export function isAllowedResponseUrl(deps: SlackDeps, url: string): boolean {
  try {
    return deps.responseOrigins.has(new URL(url).origin);
  } catch {
    return false;
  }
}
