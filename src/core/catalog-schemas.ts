import { z } from 'zod';
import { deviceManagerSchema } from './device-manager.ts';
import { webhookEventTypes } from './events.ts';
import { changePolicySchema, installWindowSchema, questionWriteIssues, policyDefinitionSchema } from './policy-schema.ts';

/**
 * Input shapes of the catalog and directory, shared by `signoff apply` and the admin API. Every object is
 * strict so a misspelt key is an error rather than a silently ignored setting.
 */

const name = z.string().trim().min(1).max(200);
const optionalText = (max: number) => z.string().trim().min(1).max(max).optional();

/** `DOMAIN\user` (sAMAccountName form) or a UPN such as `user@contoso.com`. */
export const usernameSchema = z
  .string()
  .trim()
  .max(256)
  .regex(/^(?:[^\\/\s@]+\\[^\\/\s]+|[^@\s\\]+@[^@\s\\]+\.[^@\s\\]+)$/, 'must be DOMAIN\\user or a UPN such as user@contoso.com');

export const identityInputSchema = z.strictObject({
  username: usernameSchema,
  displayName: name,
  email: z.email('must be an email address').optional(),
  /** guests are not covered by a policy's `requestors.allMembers` */
  guest: z.boolean().default(false),
  /** Slack member id, e.g. U0ADA */
  slack: z
    .string()
    .trim()
    .regex(/^[UW][A-Z0-9]{2,}$/, 'must be a Slack member id such as U0123ABCD')
    .optional(),
  /** Entra (AAD) object id of the Teams user */
  teams: z.guid('must be the Entra object id (a GUID) of the Teams user').optional(),
  /** web sign-in: the Entra object id (`oid` claim) this identity signs in as */
  oid: z.guid('must be the Entra object id (a GUID) of the user').optional(),
  /** web sign-in: the UPN (`preferred_username`/`upn` claim) this identity signs in as */
  upn: z
    .string()
    .trim()
    .max(256)
    .regex(/^[^@\s\\]+@[^@\s\\]+\.[^@\s\\]+$/, 'must be a UPN such as ada@contoso.com')
    .optional(),
  /** may open the web app's Admin pages (every request, deliveries, audit log, endpoints and API keys) */
  admin: z.boolean().optional(),
});
export type IdentityInput = z.infer<typeof identityInputSchema>;

export const deviceInputSchema = z.strictObject({
  /** Configuration Manager client GUID, e.g. GUID:5D3F1A2B-... */
  clientGuid: z.string().trim().min(1).max(100).regex(/^\S+$/, 'must not contain spaces'),
  name: name,
  primaryUser: usernameSchema.optional(),
});
export type DeviceInput = z.infer<typeof deviceInputSchema>;

export const approverGroupInputSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must use letters, digits, ".", "_" or "-"'),
  members: z.array(usernameSchema).max(500).default([]),
  /** Slack channel id the group's prompts go to, e.g. C0APPROVE */
  slackChannel: z
    .string()
    .trim()
    .regex(/^[CGD][A-Z0-9]{2,}$/, 'must be a Slack channel id such as C0123ABCD')
    .optional(),
  /** Teams channel (conversation) id, e.g. 19:approvers@thread.tacv2 */
  teamsChannel: z.string().trim().min(1).max(300).optional(),
  emails: z.array(z.email('must be an email address')).max(50).default([]),
});
export type ApproverGroupInput = z.infer<typeof approverGroupInputSchema>;

/** A named policy: the policy definition's fields next to its name. */
export const policyInputSchema = z.strictObject({ name, ...policyDefinitionSchema.shape }).superRefine((p, ctx) => {
  // the definition's own cross-field rules (duplicate question ids, escalateTo) live on its schema
  const { name: _name, ...definition } = p;
  const result = policyDefinitionSchema.safeParse(definition);
  if (!result.success) {
    // field-level issues were already reported by the shape above; only the cross-field rules are new
    for (const issue of result.error.issues)
      if (issue.code === 'custom') ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  }
  for (const issue of questionWriteIssues(p.questions)) ctx.addIssue({ code: 'custom', ...issue });
});
export type PolicyInputNamed = z.infer<typeof policyInputSchema>;

/**
 * The device manager's id for the application: a Configuration Manager model id such as
 * `ScopeId_<scope>/Application_<guid>`, an Intune app GUID, or any other id without spaces.
 */
export const applicationIdSchema = z
  .string()
  .trim()
  .min(1)
  .max(300)
  .regex(/^[^\s]+$/, 'must be an id without spaces, such as a model id ScopeId_<scope>/Application_<guid>');

export const applicationInputSchema = z
  .strictObject({
    id: applicationIdSchema,
    name,
    description: optionalText(2000),
    version: z.union([z.string().trim().min(1).max(100), z.number().transform(String)]).optional(),
    visibility: z.enum(['visible', 'hidden-until-approved']).default('visible'),
    perDevice: z.boolean().default(true),
    installWindow: installWindowSchema.optional(),
    /** an inline policy, stored as the policy `app:<application id>` */
    policy: policyDefinitionSchema.optional(),
    /** or the name of a shared policy */
    policyName: name.optional(),
    /** where approvals and revocations go by themselves: Intune (Graph) or Configuration Manager (AdminService); null for none */
    deviceManager: deviceManagerSchema.nullish(),
  })
  .superRefine((a, ctx) => {
    if (a.policy && a.policyName)
      ctx.addIssue({ code: 'custom', path: ['policyName'], message: 'give either policy (inline) or policyName, not both' });
    for (const issue of questionWriteIssues(a.policy?.questions ?? []))
      ctx.addIssue({ code: 'custom', ...issue, path: ['policy', ...issue.path] });
    // a window that opens when it closes is no window (it read as always open)
    if (a.installWindow && a.installWindow.from === a.installWindow.to)
      ctx.addIssue({ code: 'custom', path: ['installWindow', 'to'], message: 'must differ from `from`: a window that closes as it opens' });
  });
export type ApplicationInput = z.infer<typeof applicationInputSchema>;

export const changePolicyInputSchema = changePolicySchema;
export type ChangePolicyInput = z.infer<typeof changePolicyInputSchema>;

/** Standard Webhooks secret: `whsec_` + base64 of 24 to 64 random bytes. */
export const webhookSecretSchema = z.string().superRefine((s, ctx) => {
  if (!/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(s)) {
    ctx.addIssue({ code: 'custom', message: 'must be whsec_ followed by base64' });
    return;
  }
  const bytes = Buffer.from(s.slice(6), 'base64').length;
  if (bytes < 24 || bytes > 64) ctx.addIssue({ code: 'custom', message: 'must encode 24 to 64 bytes after whsec_' });
});

export const webhookInputSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must use letters, digits, ".", "_" or "-"'),
  url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2000),
  /** generated when absent on create; left as it is when absent on update */
  secret: webhookSecretSchema.optional(),
  events: z
    .array(z.enum(webhookEventTypes, { error: `must be one of ${webhookEventTypes.join(', ')}` }))
    .min(1, 'needs at least one event type')
    .refine((e) => new Set(e).size === e.length, 'lists an event type twice'),
  /** new endpoints start enabled; when absent an existing endpoint keeps its state */
  enabled: z.boolean().optional(),
});
export type WebhookInput = z.infer<typeof webhookInputSchema>;

function uniqueBy<T>(key: (item: T) => string, what: string) {
  return (items: T[] | undefined, ctx: z.RefinementCtx) => {
    const seen = new Map<string, number>();
    items?.forEach((item, i) => {
      const k = key(item).toLowerCase();
      if (seen.has(k))
        ctx.addIssue({ code: 'custom', path: [i], message: `duplicates ${what} "${key(item)}" (also at index ${seen.get(k)})` });
      else seen.set(k, i);
    });
  };
}

/**
 * The whole `signoff apply` file. Each section is optional: a section the file leaves out is not managed by
 * it (neither written nor pruned), so a directory file and a catalog file can be applied separately.
 */
export const catalogDocumentSchema = z.strictObject({
  identities: z
    .array(identityInputSchema)
    .superRefine(uniqueBy((i) => i.username, 'username'))
    .optional(),
  devices: z
    .array(deviceInputSchema)
    .superRefine(uniqueBy((d) => d.clientGuid, 'clientGuid'))
    .optional(),
  approverGroups: z
    .array(approverGroupInputSchema)
    .superRefine(uniqueBy((g) => g.name, 'group name'))
    .optional(),
  policies: z
    .array(policyInputSchema)
    .superRefine(uniqueBy((p) => p.name, 'policy name'))
    .optional(),
  applications: z
    .array(applicationInputSchema)
    .superRefine(uniqueBy((a) => a.id, 'application id'))
    .optional(),
  changePolicies: z
    .array(changePolicyInputSchema)
    .superRefine(uniqueBy((c) => c.name, 'change policy name'))
    .optional(),
  webhooks: z
    .array(webhookInputSchema)
    .superRefine(uniqueBy((w) => w.name, 'webhook name'))
    .optional(),
});
export type CatalogDocument = z.infer<typeof catalogDocumentSchema>;

export const catalogKinds = ['identities', 'devices', 'approverGroups', 'policies', 'applications', 'changePolicies', 'webhooks'] as const;
export type CatalogKind = (typeof catalogKinds)[number];
