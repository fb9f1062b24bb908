import nodemailer from 'nodemailer';
import type { AppContext } from '../../app-context.ts';
import { appendAudit, systemActor } from '../../core/audit-log.ts';
import { pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames } from '../../core/directory.ts';
import { addDuration } from '../../core/durations.ts';
import { exhaustive, type DomainEvent, type RequestEvent } from '../../core/events.ts';
import { createLinkToken } from '../../core/link-tokens.ts';
import type { ChatNotifier, MailMessage, Mailer } from '../../core/ports.ts';
import type { RequestDetail } from '../../core/views.ts';
import { originOf, requesterPlan } from '../../notifications/notification-plan.ts';
import { renderApprovalEmail, renderOutcomeEmail, renderReviewEmail } from './email-templates.ts';

export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport(smtpUrl);
  return {
    async send(m: MailMessage) {
      await transport.sendMail({ from, to: m.to, subject: m.subject, text: m.text, html: m.html });
    },
  };
}

type MailKind = { prompt: true; review?: undefined } | { prompt: false; review?: { reviewId: string; reminder: boolean } };

/** Which mail an event means: approval links for approvers, the outcome for the requester, a review question; or none. */
function mailKind(event: RequestEvent): MailKind | null {
  switch (event.type) {
    case 'request.submitted':
    case 'request.stage_advanced':
    case 'request.escalated':
    case 'request.reminder':
      return { prompt: true };
    case 'request.approved':
    case 'request.denied':
    case 'request.revoked':
    case 'request.expired':
    case 'request.cancelled':
      return { prompt: false };
    case 'request.review_started':
    case 'request.review_reminder':
      return { prompt: false, review: { reviewId: event.data.reviewId, reminder: event.type === 'request.review_reminder' } };
    case 'request.decision_recorded':
    case 'request.install_ordered':
    case 'request.access_expiring':
    case 'request.review_decided':
      return null;
    default:
      exhaustive(event);
      return null;
  }
}

/**
 * Email as a third notification channel: approvers get one-time approve/deny links, requesters get the outcome.
 * Idempotent per event: a message already recorded for this event id is not sent again.
 */
export class EmailNotifier implements ChatNotifier {
  readonly platform = 'email' as const;
  constructor(
    private readonly ctx: AppContext,
    private readonly mailer: Mailer,
  ) {}

  async handle(event: DomainEvent): Promise<void> {
    if (event.subjectType !== 'request') return;
    const kind = mailKind(event);
    if (!kind) return;
    const done = await this.ctx.db.maybeOne(
      `SELECT 1 FROM audit_events WHERE subject_type = 'request' AND subject_id = $1 AND action = 'message.sent' AND details->>'eventId' = $2 AND channel = 'email' LIMIT 1`,
      [event.subjectId, event.id],
    );
    if (done) return;
    const request = await this.ctx.requests.get(event.subjectId);
    const messages = kind.review
      ? await this.reviewMails(kind.review.reviewId, kind.review.reminder)
      : kind.prompt
        ? await this.approvalMails(event, request)
        : this.outcomeMails(event, request);
    for (const m of messages) await this.mailer.send(m);
    if (messages.length) {
      await this.ctx.db.tx((tx) =>
        appendAudit(tx, {
          actor: { ...systemActor, channel: 'email' },
          action: 'message.sent',
          subjectType: 'request',
          subjectId: request.id,
          details: { eventId: event.id, event: event.type, recipients: messages.flatMap((m) => m.to) },
          at: this.ctx.clock.now(),
        }),
      );
    }
  }

  private async approvalMails(event: DomainEvent, request: RequestDetail): Promise<MailMessage[]> {
    if (request.status !== 'pending') return [];
    const stage = request.stages[request.currentStage]!;
    const groups = await groupsByNames(this.ctx.db, stage.approverGroups);
    const people = (await pendingApprovers(this.ctx.db, request)).filter((p) => p.email);
    const expiresAt = addDuration(this.ctx.clock.now(), this.ctx.config.LINK_TOKEN_TTL);
    const base = this.ctx.config.PUBLIC_URL.replace(/\/$/, '');
    const mails: MailMessage[] = [];
    for (const p of people) {
      const link = async (action: 'approve' | 'deny') =>
        `${base}/links/${await createLinkToken(this.ctx.db, { requestId: request.id, approverId: p.id, stage: request.currentStage, version: request.version, action, expiresAt, createdAt: this.ctx.clock.now() })}`;
      mails.push(
        renderApprovalEmail(request, {
          to: [p.email!],
          approveUrl: await link('approve'),
          denyUrl: await link('deny'),
          reminder: event.type === 'request.reminder',
          pageUrl: this.pageUrl(request.id),
        }),
      );
    }
    // shared mailboxes cannot vouch for a person, so they get the details without links
    const shared = groups.flatMap((g) => g.emails ?? []);
    if (shared.length && event.type !== 'request.reminder')
      mails.push(renderApprovalEmail(request, { to: shared, pageUrl: this.pageUrl(request.id) }));
    return mails;
  }

  /**
   * Reviewers with an email address, and the groups' shared mailboxes, get the question; they answer in chat or the
   * API. Reminders, like request reminders, go to the people only.
   */
  private async reviewMails(reviewId: string, reminder: boolean): Promise<MailMessage[]> {
    const v = await this.ctx.reviews.get(reviewId);
    if (v.status !== 'pending') return [];
    const people = (await pendingReviewers(this.ctx.db, v)).filter((p) => p.email).map((p) => p.email!);
    const shared = reminder ? [] : (await groupsByNames(this.ctx.db, v.reviewerGroups)).flatMap((g) => g.emails ?? []);
    const to = [...new Set([...people, ...shared])];
    return to.length ? [renderReviewEmail(v, to, { reminder })] : [];
  }

  /** The outcome goes to the requester when the notification plan says they hear it by email. */
  private outcomeMails(event: DomainEvent, request: RequestDetail): MailMessage[] {
    const requester = request.requester ? { id: request.requester.id, email: request.requester.email } : null;
    const registered = [...new Set([...this.ctx.notifiers.map((n) => n.platform), this.platform])];
    const told = requesterPlan({ event, requester, origin: originOf(request.history, 'request.submitted'), registered }).email;
    return told && request.requester?.email ? [renderOutcomeEmail(request, request.requester.email, this.pageUrl(request.id))] : [];
  }

  /** The request's page in the web app (/app), where Revoke and Reapprove are buttons of their own. */
  private pageUrl(requestId: string): string {
    return `${this.ctx.config.PUBLIC_URL.replace(/\/$/, '')}/app/requests/${requestId}`;
  }
}

export function createEmailNotifier(ctx: AppContext): EmailNotifier | undefined {
  if (!ctx.config.SMTP_URL) return undefined;
  const mailer = ctx.mailer ?? createSmtpMailer(ctx.config.SMTP_URL, ctx.config.SMTP_FROM);
  ctx.mailer = mailer;
  return new EmailNotifier(ctx, mailer);
}
