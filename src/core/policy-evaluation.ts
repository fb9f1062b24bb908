import { addDuration } from './durations.ts';
import { answerMatches, type InstallWindow, type PolicyDefinition, type Question, type Stage } from './policy-schema.ts';

export interface RequesterFacts {
  username: string;
  isGuest: boolean;
  groups: string[];
}

/** Who may request: listed identities, members of listed groups, or everyone but guests. */
export function mayRequest(policy: PolicyDefinition, who: RequesterFacts): boolean {
  const r = policy.requestors;
  if (r.identities.some((u) => u.toLowerCase() === who.username.toLowerCase())) return true;
  if (r.groups.some((g) => who.groups.includes(g))) return true;
  return r.allMembers && !who.isGuest;
}

export interface SubmissionInput {
  justification?: string | null;
  answers?: Record<string, unknown>;
}

/** Field-level problems, keyed so a modal or card can show each next to its input. */
export interface FieldErrors {
  justification?: string;
  answers: Record<string, string>;
  unknown: string[];
}

export const hasFieldErrors = (e: FieldErrors) => Boolean(e.justification) || Object.keys(e.answers).length > 0 || e.unknown.length > 0;

function checkAnswer(q: Question, value: unknown): string | undefined {
  const empty = value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0);
  if (empty) return q.required ? 'Please answer this question.' : undefined;
  if (q.type === 'multichoice') {
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) return 'Choose one or more of the options.';
    const bad = [...new Set(value.filter((v) => !q.options!.includes(v as string)))];
    if (bad.length) return bad.length === 1 ? `"${bad[0]}" is not one of the options.` : `"${bad.join('", "')}" are not among the options.`;
    // the answer is a set: the same option twice is a client's mistake, not a stronger answer
    const twice = [...new Set(value.filter((v, i) => value.indexOf(v) !== i))];
    return twice.length
      ? `Choose each option once ("${twice.join('", "')}" ${twice.length === 1 ? 'is' : 'are'} given more than once).`
      : undefined;
  }
  if (typeof value !== 'string') return 'Answer with text.';
  if (q.type === 'choice') return q.options!.includes(value) ? undefined : `"${value}" is not one of the options.`;
  if (q.minLength !== undefined && value.trim().length < q.minLength) return `Write at least ${q.minLength} characters.`;
  if (q.maxLength !== undefined && value.length > q.maxLength) return `Write at most ${q.maxLength} characters.`;
  if (q.pattern && !answerMatches(q.pattern, value)) return 'The answer is not in the expected format.';
  return undefined;
}

export function validateSubmission(policy: PolicyDefinition, input: SubmissionInput): FieldErrors {
  const errors: FieldErrors = { answers: {}, unknown: [] };
  const justification = input.justification?.trim() ?? '';
  if (policy.justification === 'required' && justification.length === 0) {
    errors.justification = 'A business justification is required.';
  } else if (justification.length > 2000) {
    errors.justification = 'Keep the justification under 2000 characters.';
  }
  const answers = input.answers ?? {};
  for (const q of policy.questions) {
    const problem = checkAnswer(q, answers[q.id]);
    if (problem) errors.answers[q.id] = problem;
  }
  const known = new Set(policy.questions.map((q) => q.id));
  errors.unknown = Object.keys(answers).filter((k) => !known.has(k));
  return errors;
}

export function describeFieldErrors(e: FieldErrors): string {
  const parts: string[] = [];
  if (e.justification) parts.push(`justification: ${e.justification}`);
  for (const [id, msg] of Object.entries(e.answers)) parts.push(`answers.${id}: ${msg}`);
  if (e.unknown.length) parts.push(`answers: unknown question(s) ${e.unknown.join(', ')}`);
  return parts.join('; ');
}

export interface StageVote {
  approverId: string;
  decision: 'approve' | 'deny';
}

export type StageOutcome = 'approved' | 'denied' | 'waiting';

/**
 * Any deny settles the stage as denied. Approvals count against the quorum: `any` needs one, `all` needs
 * every eligible approver, N needs N (capped at the number of eligible approvers so a stage cannot be stuck).
 */
export function evaluateStage(stage: Stage, votes: StageVote[], eligibleApprovers: number): StageOutcome {
  if (votes.some((v) => v.decision === 'deny')) return 'denied';
  const approvals = new Set(votes.filter((v) => v.decision === 'approve').map((v) => v.approverId)).size;
  const needed = requiredApprovals(stage, eligibleApprovers);
  return approvals >= needed ? 'approved' : 'waiting';
}

export function requiredApprovals(stage: Stage, eligibleApprovers: number): number {
  if (stage.quorum === 'any') return 1;
  if (stage.quorum === 'all') return Math.max(1, eligibleApprovers);
  return Math.max(1, Math.min(stage.quorum, eligibleApprovers));
}

export interface StageTimers {
  deadlineAt: Date;
  nextReminderAt: Date | null;
  escalateAt: Date | null;
}

/** Timers start over with each stage; the decision deadline runs from submission. */
export function stageTimers(policy: PolicyDefinition, submittedAt: Date, stageStartedAt: Date): StageTimers {
  return {
    deadlineAt: addDuration(submittedAt, policy.decisionDeadline),
    nextReminderAt: policy.reminderEvery ? addDuration(stageStartedAt, policy.reminderEvery) : null,
    escalateAt: policy.escalateAfter && policy.escalateTo?.length ? addDuration(stageStartedAt, policy.escalateAfter) : null,
  };
}

export interface AccessTimers {
  accessExpiresAt: Date | null;
  accessWarnAt: Date | null;
  nextReviewAt: Date | null;
}

export function accessTimers(policy: PolicyDefinition, approvedAt: Date): AccessTimers {
  const accessExpiresAt = policy.accessLifetime ? addDuration(approvedAt, policy.accessLifetime) : null;
  let accessWarnAt: Date | null = null;
  if (accessExpiresAt) {
    const warn = new Date(accessExpiresAt.getTime() - addDuration(new Date(0), policy.accessExpiryWarning).getTime());
    accessWarnAt = warn > approvedAt ? warn : null;
  }
  return {
    accessExpiresAt,
    accessWarnAt,
    nextReviewAt: policy.accessReviewEvery ? addDuration(approvedAt, policy.accessReviewEvery) : null,
  };
}

function zonedParts(at: Date, timeZone: string) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(at);
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  return { y: get('year'), m: get('month'), d: get('day'), h: get('hour'), min: get('minute'), s: get('second') };
}

/** The UTC instant at which the wall clock in `timeZone` shows the given local time. */
export function zonedTimeToUtc(y: number, m: number, d: number, h: number, min: number, timeZone: string): Date {
  const guess = Date.UTC(y, m - 1, d, h, min);
  let at = guess;
  for (let i = 0; i < 3; i++) {
    const p = zonedParts(new Date(at), timeZone);
    const shown = Date.UTC(p.y, p.m - 1, p.d, p.h, p.min);
    at += guess - shown;
  }
  return new Date(at);
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** null when `now` is inside the install window, else the instant the window next opens. */
export function nextInstallWindowOpening(window: InstallWindow, now: Date): Date | null {
  const local = zonedParts(now, window.timeZone);
  const nowMin = local.h * 60 + local.min;
  const from = minutesOf(window.from);
  const to = minutesOf(window.to);
  const inside = from === to ? true : from < to ? nowMin >= from && nowMin < to : nowMin >= from || nowMin < to;
  if (inside) return null;
  const today = zonedTimeToUtc(local.y, local.m, local.d, Math.floor(from / 60), from % 60, window.timeZone);
  if (today > now) return today;
  const tomorrow = new Date(Date.UTC(local.y, local.m - 1, local.d + 1));
  return zonedTimeToUtc(
    tomorrow.getUTCFullYear(),
    tomorrow.getUTCMonth() + 1,
    tomorrow.getUTCDate(),
    Math.floor(from / 60),
    from % 60,
    window.timeZone,
  );
}

/**
 * The reminder after one due at `last`, at the policy's interval; none without an interval or once it would
 * fall on or after `until`. A sweeper that was down sends one reminder, not one per missed interval.
 */
export function nextReminder(policy: PolicyDefinition, last: Date, now: Date, until: Date | null): Date | null {
  if (!policy.reminderEvery) return null;
  let next = addDuration(last, policy.reminderEvery);
  if (next <= now) next = addDuration(now, policy.reminderEvery);
  return until && next >= until ? null : next;
}
