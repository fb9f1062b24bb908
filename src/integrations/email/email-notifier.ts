import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { AppContext } from '../../app-context.ts';
import { pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames } from '../../core/directory.ts';
import { addDuration } from '../../core/durations.ts';
import type { DomainEvent, RequestEvent } from '../../core/events.ts';
import { createLinkToken } from '../../core/link-tokens.ts';
import type { MailMessage, Mailer } from '../../core/ports.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { RequestDetail } from '../../core/views.ts';
import { PlannedNotifier, type RequesterTold, type Told } from '../../notifications/planned-notifier.ts';
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

/**
 * Email as a third notification channel: approvers get one-time approve/deny links, requesters get the outcome.
 * Idempotent per event and recipients: a mail already recorded in the message store for this event is not sent again.
 */
export class EmailNotifier extends PlannedNotifier {
  constructor(
    ctx: AppContext,
    private readonly mailer: Mailer,
  ) {
    super(ctx, 'email');
  }

  // a mail once sent cannot be redrawn, and changes are decided by admins in chat
  protected async redrawRequest(): Promise<void> {}
  protected async redrawChange(): Promise<void> {}
  protected async redrawReview(): Promise<void> {}
  protected async postChange(): Promise<void> {}

  protected async postStage(event: RequestEvent, r: RequestDetail): Promise<void> {
    await this.send(event, await this.approvalMails(event, r));
  }

  protected async postEscalation(event: RequestEvent, r: RequestDetail): Promise<void> {
    await this.send(event, await this.approvalMails(event, r));
  }

  // an escalation already mails the whole prompt (postEscalation); a reminder mails fresh links
  protected async remindApprovers(event: RequestEvent, r: RequestDetail, kind: 'reminder' | 'escalation'): Promise<void> {
    if (kind === 'reminder') await this.send(event, await this.approvalMails(event, r));
  }

  protected async postReview(event: RequestEvent, review: ReviewView): Promise<void> {
    await this.send(event, await this.reviewMails(review, false));
  }

  protected async remindReviewers(event: RequestEvent, review: ReviewView): Promise<void> {
    await this.send(event, await this.reviewMails(review, true));
  }

  /** The outcome of a request; the plan tells a requester by email about nothing else. */
  protected async tellRequester(event: DomainEvent, told: Told, how: RequesterTold): Promise<void> {
    if (told.kind !== 'request' || !how.requester.email) return;
    const r = told.request;
    const message = renderOutcomeEmail(r, how.requester.email, this.pageUrl(r.id));
    const mail: Mail = {
      subject: { type: 'request', id: r.id },
      purpose: 'outcome',
      to: [how.requester.email],
      recipientId: how.requester.id,
      build: async () => message,
    };
    await this.send(event, [mail]);
  }

  /** One delivery per mail: a retry after a failed send resends only what was not sent. */
  private async send(event: DomainEvent, mails: Mail[]): Promise<void> {
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
  private async reviewMails(v: ReviewView, reminder: boolean): Promise<Mail[]> {
    const people = (await pendingReviewers(this.ctx.db, v)).filter((p) => p.email).map((p) => p.email!);
    const shared = reminder ? [] : (await groupsByNames(this.ctx.db, v.reviewerGroups)).flatMap((g) => g.emails ?? []);
    const to = [...new Set([...people, ...shared])];
    if (!to.length) return [];
    const message = renderReviewEmail(v, to, { reminder });
    return [{ subject: { type: 'review', id: v.id }, purpose: reminder ? 'reminder' : 'prompt', to, build: async () => message }];
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
