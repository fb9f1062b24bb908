import { RE2JS } from 're2js';
import { z } from 'zod';
import { durationSchema } from './durations.ts';

const name = z.string().trim().min(1).max(200);

export const questionSchema = z
  .strictObject({
    id: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'must start with a letter and use letters, digits, _ or -'),
    text: z.string().trim().min(1).max(500),
    type: z.enum(['text', 'choice', 'multichoice']),
    options: z.array(z.string().trim().min(1).max(200)).min(1).max(50).optional(),
    required: z.boolean().default(true),
    minLength: z.number().int().min(0).max(5000).optional(),
    maxLength: z.number().int().min(1).max(5000).optional(),
    pattern: z
      .string()
      .max(500)
      .refine((p) => {
        try {
          new RegExp(p);
          return true;
        } catch {
          return false;
        }
      }, 'must be a valid regular expression')
      .optional(),
  })
  .superRefine((q, ctx) => {
    if (q.type !== 'text' && !q.options)
      ctx.addIssue({ code: 'custom', path: ['options'], message: `is required for ${q.type} questions` });
    if (q.type === 'text' && q.options) ctx.addIssue({ code: 'custom', path: ['options'], message: 'only choice questions have options' });
  });

export const quorumSchema = z.union([z.enum(['any', 'all']), z.number().int().min(1).max(50)]);

export const stageSchema = z.strictObject({
  approvers: z.array(name).min(1).max(10),
  quorum: quorumSchema.default('any'),
  approverJustification: z.boolean().default(false),
  /** Also send the prompt to each approver's personal chat, not only the group channel. */
  notifyApproversDirectly: z.boolean().default(false),
});

export const requestorsSchema = z.strictObject({
  /** everyone but guests */
  allMembers: z.boolean().default(true),
  identities: z.array(name).default([]),
  groups: z.array(name).default([]),
});

export const policyDefinitionSchema = z
  .strictObject({
    requestors: requestorsSchema.default({ allMembers: true, identities: [], groups: [] }),
    justification: z.enum(['required', 'optional', 'none']).default('required'),
    questions: z.array(questionSchema).max(20).default([]),
    stages: z.array(stageSchema).min(1, 'needs at least one approval stage').max(3, 'has at most 3 approval stages'),
    decisionDeadline: durationSchema.default('P14D'),
    reminderEvery: durationSchema.optional(),
    escalateAfter: durationSchema.optional(),
    escalateTo: z.array(name).max(10).optional(),
    accessLifetime: durationSchema.optional(),
    accessExtendable: z.boolean().default(false),
    accessExpiryWarning: durationSchema.default('P7D'),
    accessReviewEvery: durationSchema.optional(),
    reviewers: z.array(name).max(10).optional(),
  })
  .superRefine((p, ctx) => {
    const ids = new Set<string>();
    p.questions.forEach((q, i) => {
      if (ids.has(q.id)) ctx.addIssue({ code: 'custom', path: ['questions', i, 'id'], message: `duplicates question id "${q.id}"` });
      ids.add(q.id);
    });
    if (p.escalateAfter && !p.escalateTo?.length) {
      ctx.addIssue({ code: 'custom', path: ['escalateTo'], message: 'is required when escalateAfter is set' });
    }
  });

export type PolicyDefinition = z.infer<typeof policyDefinitionSchema>;
export type PolicyInput = z.input<typeof policyDefinitionSchema>;
export type Question = z.infer<typeof questionSchema>;

const compiledPatterns = new Map<string, { test(value: string): boolean }>();

/** A pattern RE2 can run, or why not: an answer is matched in time linear in its length, never backtracking. */
function linearPattern(pattern: string): { test(value: string): boolean } | string {
  try {
    const re = RE2JS.compile(pattern);
    return { test: (value) => re.matcher(value).find() };
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * What a policy being saved may not have, though one read back may (checked on every write of a policy: the API,
 * the YAML file, the web app; a policy saved before these rules still loads): a question whose length bounds no
 * answer fits, or whose pattern needs a backtracking engine (lookaround, backreferences). A pattern saved before is
 * matched by JavaScript's engine.
 */
export function questionWriteIssues(
  questions: readonly Pick<Question, 'pattern' | 'minLength' | 'maxLength'>[],
): { path: (string | number)[]; message: string }[] {
  return questions.flatMap((q, i) => {
    const issues: { path: (string | number)[]; message: string }[] = [];
    if (q.minLength !== undefined && q.maxLength !== undefined && q.minLength > q.maxLength)
      issues.push({ path: ['questions', i, 'maxLength'], message: `must be at least minLength (${q.minLength}): no answer could fit` });
    const compiled = q.pattern ? linearPattern(q.pattern) : undefined;
    if (typeof compiled === 'string') {
      issues.push({
        path: ['questions', i, 'pattern'],
        message: `must be a regular expression without backreferences or lookaround (RE2 syntax), matched in linear time: ${compiled}`,
      });
    }
    return issues;
  });
}

/** Whether an answer matches a question's pattern; a backtracking pattern typed by an admin cannot stall the process. */
export function answerMatches(pattern: string, value: string): boolean {
  let compiled = compiledPatterns.get(pattern);
  if (!compiled) {
    const linear = linearPattern(pattern);
    compiled = typeof linear === 'string' ? new RegExp(pattern) : linear;
    if (compiledPatterns.size >= 500) compiledPatterns.clear();
    compiledPatterns.set(pattern, compiled);
  }
  return compiled.test(value);
}
export type Stage = z.infer<typeof stageSchema>;
export type Quorum = z.infer<typeof quorumSchema>;

const parsedPolicies = new WeakMap<object, PolicyDefinition>();

/**
 * A request's policy snapshot, validated (and given the defaults of fields added since it was stored) once per row
 * read rather than at each use: an approval parsed it three times, about 10 µs each (3% of the server's samples in a
 * decide-http profile). Keyed by the object the read produced, so a row read again is validated again.
 */
/**
 * In SQL, whether a stored policy (`policy`, a jsonb expression) names a group (`group`, a text expression) among
 * those who decide or review under it: an approver of any stage, an escalation group or a reviewer. A policy that
 * names no reviewers has its last stage's approvers review, already named among the stages.
 */
export const policyNamesDeciderSql = (policy: string, group: string): string =>
  `(EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(${policy}->'stages', '[]')) st WHERE coalesce(st->'approvers', '[]') ? ${group})
     OR coalesce(${policy}->'escalateTo', '[]') ? ${group} OR coalesce(${policy}->'reviewers', '[]') ? ${group})`;

export function requestPolicy(row: { policy: unknown }): PolicyDefinition {
  const raw = row.policy;
  if (raw === null || typeof raw !== 'object') return policyDefinitionSchema.parse(raw);
  let parsed = parsedPolicies.get(raw);
  if (!parsed) {
    parsed = policyDefinitionSchema.parse(raw);
    parsedPolicies.set(raw, parsed);
  }
  return parsed;
}

export const installWindowSchema = z.strictObject({
  from: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM'),
  to: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM'),
  timeZone: z
    .string()
    .default('UTC')
    .refine((tz) => {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    }, 'must be an IANA time zone such as Europe/Berlin'),
});
export type InstallWindow = z.infer<typeof installWindowSchema>;

/** A change policy protects resource types with an approver group (Intune multi-admin approval). */
export const changePolicySchema = z.strictObject({
  name,
  resourceTypes: z.array(z.string().trim().min(1).max(100)).min(1),
  approvers: z.array(name).min(1),
});
export type ChangePolicyInput = z.infer<typeof changePolicySchema>;
