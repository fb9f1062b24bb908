import { readableUtc } from '../../core/clock.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../../core/views.ts';
import { plainText, type NoticeInput } from './teams-cards.ts';

/** The words of the one-off Teams notices: requester outcomes, reminders and other follow-ups. Pure. */

const what = (r: { application: { name: string }; device?: { name: string } | null }) =>
  `${r.application.name}${r.device ? ` on ${r.device.name}` : ''}`;

export function outcomeNotice(r: RequestDetail): NoticeInput {
  const by = r.decidedBy ?? 'Signoff';
  const why = r.decisionReason ? ` Reason: "${plainText(r.decisionReason)}".` : '';
  switch (r.status) {
    case 'approved': {
      const install = r.installOrderedAt
        ? ' The install has been ordered.'
        : r.installDueAt
          ? ` It installs in the next maintenance window (${readableUtc(r.installDueAt)}), or now if you ask.`
          : '';
      return {
        title: `${r.application.name} approved`,
        text: `${by} approved ${what(r)}.${why}${install}`,
        tone: 'success',
        installNowId: !r.installOrderedAt && r.installDueAt ? r.id : undefined,
      };
    }
    case 'denied':
      return { title: `${r.application.name} denied`, text: `${by} denied ${what(r)}.${why}`, tone: 'error' };
    case 'revoked':
      return {
        title: `${r.application.name} access revoked`,
        text: `${by} revoked ${what(r)}; it will be uninstalled.${why}`,
        tone: 'error',
      };
    case 'expired':
      return {
        title: `${r.application.name} request expired`,
        text: `Nobody decided on ${what(r)} before the deadline. You can request it again.`,
        tone: 'warning',
      };
    default:
      return { title: `${r.application.name} request cancelled`, text: `${by} cancelled the request for ${what(r)}.${why}`, tone: 'info' };
  }
}

export const stageAdvancedNotice = (r: RequestDetail): NoticeInput => ({
  title: `${r.application.name}: stage ${r.currentStage} approved`,
  text: `Your request moved on to stage ${r.currentStage + 1} of ${r.stageCount}.`,
  tone: 'info',
});

export const installOrderedNotice = (r: RequestDetail): NoticeInput => ({
  title: `Installing ${r.application.name}`,
  text: `The install${r.device ? ` on ${r.device.name}` : ''} has been ordered. It usually starts within a few minutes.`,
  tone: 'success',
});

export const accessExpiringNotice = (r: RequestDetail): NoticeInput => ({
  title: `${r.application.name} access is expiring`,
  text: `Your access${r.device ? ` on ${r.device.name}` : ''} ends ${r.accessExpiresAt ? `on ${readableUtc(r.accessExpiresAt)}` : 'soon'}; it will be uninstalled then. Request it again if you still need it.`,
  tone: 'warning',
});

export const reminderNotice = (r: RequestDetail, escalated: boolean, mentions: NoticeInput['mentions']): NoticeInput => ({
  mentions,
  title: escalated ? 'Escalated: still waiting for a decision' : 'Reminder: waiting for a decision',
  text: `${r.requester?.displayName ?? 'A machine'}'s request for ${what(r)} has waited since ${readableUtc(r.createdAt)}.${r.deadlineAt ? ` Decide before ${readableUtc(r.deadlineAt)}.` : ''}`,
  tone: escalated ? 'warning' : 'info',
});

export const reviewReminderNotice = (v: ReviewView, mentions: NoticeInput['mentions']): NoticeInput => ({
  mentions,
  title: 'Reminder: access review still open',
  text: `Does ${v.requester?.displayName ?? 'this device'} still need ${what(v)}? Keep or remove it before ${readableUtc(v.dueAt)}; if nobody answers, the review lapses and the access is kept.`,
  tone: 'info',
});

export function changeOutcomeNotice(c: ChangeView): NoticeInput {
  const verb = c.status === 'approved' ? 'approved' : c.status === 'rejected' ? 'rejected' : 'cancelled';
  return {
    title: `Your change to ${c.resourceType} "${c.resourceId}" was ${verb}`,
    text: `${c.decidedBy ?? 'Signoff'} ${verb} it.${c.decisionNotes ? ` Notes: "${c.decisionNotes}"` : ''}${c.status === 'approved' ? ' It is being applied.' : ''}`,
    tone: c.status === 'approved' ? 'success' : 'error',
  };
}
