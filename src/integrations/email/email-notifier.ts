import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { AppContext } from '../../app-context.ts';
import { pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames } from '../../core/directory.ts';
import { addDuration } from '../../core/durations.ts';
import { exhaustive, type DomainEvent, type RequestEvent } from '../../core/events.ts';
import { createLinkToken } from '../../core/link-tokens.ts';
import type { ChatNotifier, MailMessage, Mailer } from '../../core/ports.ts';
import type { RequestDetail } from '../../core/views.ts';
import { MessageStore, notifierActor } from '../../notifications/message-store.ts';
import { originOf, requesterPlan } from '../../notifications/notification-plan.ts';
import { renderApprovalEmail, renderOutcomeEmail, renderReviewEmail } from './email-templates.ts';

export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport(smtpUrl);
  return {
    async send(m: MailMessage) {
      await transport.sendMail({ from, to: m.to, subject: m.subject, text: m.text, html: m.html, messageId: m.messageId });
    },
  };
}

/** One mail to send: to whom, about what, and how to write it (only once it is certain to be sent). */
interface Mail {
  subject: { type: 'request' | 'review'; id: string };
  purpose: 'prompt' | 'reminder' | 'outcome';
  to: string[];
  recipientId?: string;
  build: () => Promise<MailMessage>;
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
 * Idempotent per event and recipients: a mail already recorded in the message store for this event is not sent again.
 */
export class EmailNotifier implements ChatNotifier {
  readonly platform = 'email' as const;
  private readonly store: MessageStore;

  constructor(
    private readonly ctx: AppContext,
    private readonly mailer: Mailer,
  ) {
    this.store = new MessageStore(ctx.db, 'email', notifierActor('email'), ctx.clock);
  }

  async handle(event: DomainEvent): Promise<void> {
    if (event.subjectType !== 'request') return;
    const kind = mailKind(event);
    if (!kind) return;
    const mails = kind.review
      ? await this.reviewMails(kind.review.reviewId, kind.review.reminder)
      : kind.prompt
        ? await this.approvalMails(event, await this.ctx.requests.get(event.subjectId))
        : this.outcomeMails(event, await this.ctx.requests.get(event.subjectId));
    // one delivery per mail: a retry after a failed send resends only what was not sent
    for (const m of mails) {
      const to = m.to.join(',');
      await this.store.once({ eventId: event.id, key: `mail:${m.purpose}:${to}` }, async () => {
        const messageId = `<${randomUUID()}@signoff>`;
        await this.mailer.send({ ...(await m.build()), messageId });
        const subject = { subjectType: m.subject.type, subjectId: m.subject.id, purpose: m.purpose, conversationId: to, messageId };
        return { message: { ...subject, recipientId: m.recipientId ?? null }, audit: { event: event.type, recipients: m.to } };
      });
    }
  }

  private async approvalMails(event: DomainEvent, request: RequestDetail): Promise<Mail[]> {
    if (request.status !== 'pending') return [];
    const stage = request.stages[request.currentStage]!;
    const groups = await groupsByNames(this.ctx.db, stage.approverGroups);
    const people = (await pendingApprovers(this.ctx.db, request)).filter((p) => p.email);
    const base = this.ctx.config.PUBLIC_URL.replace(/\/$/, '');
    const subject = { type: 'request', id: request.id } as const;
    const purpose = event.type === 'request.reminder' ? 'reminder' : 'prompt';
    const mails: Mail[] = people.map((p) => ({
      subject,
      purpose,
      to: [p.email!],
      recipientId: p.id,
      // links are minted only for mails actually sent, and bound to this stage and version
      build: async () => {
        const expiresAt = addDuration(this.ctx.clock.now(), this.ctx.config.LINK_TOKEN_TTL);
        const link = async (action: 'approve' | 'deny') =>
          `${base}/links/${await createLinkToken(this.ctx.db, { requestId: request.id, approverId: p.id, stage: request.currentStage, version: request.version, action, expiresAt, createdAt: this.ctx.clock.now() })}`;
        return renderApprovalEmail(request, {
          to: [p.email!],
          approveUrl: await link('approve'),
          denyUrl: await link('deny'),
          reminder: event.type === 'request.reminder',
          pageUrl: this.pageUrl(request.id),
        });
      },
    }));
    // shared mailboxes cannot vouch for a person, so they get the details without links
    const shared = groups.flatMap((g) => g.emails ?? []);
    if (shared.length && event.type !== 'request.reminder') {
      const message = renderApprovalEmail(request, { to: shared, pageUrl: this.pageUrl(request.id) });
      mails.push({ subject, purpose, to: shared, build: async () => message });
    }
    return mails;
  }

  /**
   * Reviewers with an email address, and the groups' shared mailboxes, get the question; they answer in chat or the
   * API. Reminders, like request reminders, go to the people only.
   */
  private async reviewMails(reviewId: string, reminder: boolean): Promise<Mail[]> {
    const v = await this.ctx.reviews.get(reviewId);
    if (v.status !== 'pending') return [];
    const people = (await pendingReviewers(this.ctx.db, v)).filter((p) => p.email).map((p) => p.email!);
    const shared = reminder ? [] : (await groupsByNames(this.ctx.db, v.reviewerGroups)).flatMap((g) => g.emails ?? []);
    const to = [...new Set([...people, ...shared])];
    if (!to.length) return [];
    const message = renderReviewEmail(v, to, { reminder });
    return [{ subject: { type: 'review', id: v.id }, purpose: reminder ? 'reminder' : 'prompt', to, build: async () => message }];
  }

  /** The outcome goes to the requester when the notification plan says they hear it by email. */
  private outcomeMails(event: DomainEvent, request: RequestDetail): Mail[] {
    const requester = request.requester ? { id: request.requester.id, email: request.requester.email } : null;
    const registered = [...new Set([...this.ctx.notifiers.map((n) => n.platform), this.platform])];
    const told = requesterPlan({ event, requester, origin: originOf(request.history, 'request.submitted'), registered }).email;
    const to = request.requester?.email;
    if (!told || !to) return [];
    const message = renderOutcomeEmail(request, to, this.pageUrl(request.id));
    return [
      {
        subject: { type: 'request', id: request.id },
        purpose: 'outcome',
        to: [to],
        recipientId: request.requester!.id,
        build: async () => message,
      },
    ];
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
