import type { AppContext } from '../../app-context.ts';
import type { Actor } from '../../core/audit-log.ts';
import { protectedResourceTypes } from '../../core/change-queries.ts';
import { readableUtc } from '../../core/clock.ts';
import { applicationByIdOrName, devicesOfUser, policyOf, visibleApplications } from '../../core/directory.ts';
import { AppError, isAppError } from '../../core/errors.ts';
import { validateSubmission, type FieldErrors } from '../../core/policy-evaluation.ts';
import { countRequests, listRequests } from '../../core/request-queries.ts';
import {
  appPickerCard,
  changeFormCard,
  myRequestsCard,
  plainText,
  questionInputId,
  requestFormCard,
  type AdaptiveCard,
  type ChangeFormInput,
  type ListItem,
} from './teams-cards.ts';

/** The requester-side cards: choosing an app, the request form with inline errors, "my requests", the change form. */
type Data = Record<string, unknown>;
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

export async function appPicker(ctx: AppContext, actor: Actor, banner?: string): Promise<AdaptiveCard> {
  const apps = await visibleApplications(ctx.db, actor.id!);
  return appPickerCard(
    apps.map((a) => ({ id: a.id, name: a.name })),
    banner,
  );
}

/** `request Visio`: the form for that app, or the picker with a hint when the name matches nothing requestable. */
export async function requestForm(
  ctx: AppContext,
  actor: Actor,
  idOrName: string,
  values: FormValues = {},
  errors?: FormErrors,
): Promise<AdaptiveCard> {
  const visible = await visibleApplications(ctx.db, actor.id!);
  const wanted = idOrName.trim().toLowerCase();
  const app =
    visible.find((a) => a.id === idOrName || a.name.toLowerCase() === wanted) ?? visible.find((a) => a.name.toLowerCase().includes(wanted));
  if (!app) {
    // a hidden application this person may not see is answered as an unknown one
    const found = await applicationByIdOrName(ctx.db, idOrName);
    const exists = found?.visibility === 'hidden-until-approved' ? undefined : found;
    return appPickerCard(
      visible.map((a) => ({ id: a.id, name: a.name })),
      exists
        ? `${exists.name} cannot be requested by you. Choose another application.`
        : `No application called "${idOrName}" is in the catalog. Choose one of these.`,
    );
  }
  const policy = policyOf(app);
  const devices = app.per_device ? await devicesOfUser(ctx.db, actor.id!) : [];
  return requestFormCard({
    application: { id: app.id, name: app.name, description: app.description, perDevice: app.per_device },
    devices: devices.map((d) => ({ id: d.id, name: d.name })),
    justificationMode: policy.justification,
    questions: policy.questions,
    values,
    errors:
      errors ??
      (app.per_device && devices.length === 0
        ? { summary: 'No device is registered to you, so nothing can be installed. Ask IT to register your device.' }
        : undefined),
  });
}

interface FormValues {
  deviceId?: string;
  justification?: string;
  answers?: Record<string, unknown>;
}

interface FormErrors {
  summary?: string;
  device?: string;
  justification?: string;
  answers?: Record<string, string>;
}

function fieldErrors(f: FieldErrors): FormErrors {
  return { justification: f.justification, answers: f.answers, summary: 'Please fix the highlighted fields.' };
}

/** Validates the submitted card; problems come back as the same form, values kept, each error under its field. */
export async function submitRequestFromCard(ctx: AppContext, actor: Actor, data: Data): Promise<{ id: string } | { form: AdaptiveCard }> {
  const applicationId = str(data.applicationId);
  if (!applicationId)
    throw new AppError('validation_failed', 'The form does not say which application it is for.', { field: 'applicationId' });
  const app = (await visibleApplications(ctx.db, actor.id!)).find((a) => a.id === applicationId);
  if (!app) throw new AppError('not_requestable', 'This application cannot be requested by you.');
  const policy = policyOf(app);
  const answers: Record<string, unknown> = {};
  for (const q of policy.questions) {
    const raw = str(data[questionInputId(q.id)]);
    if (raw === undefined || raw === '') continue;
    answers[q.id] =
      q.type === 'multichoice'
        ? raw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : raw;
  }
  const values: FormValues = { deviceId: str(data.device) || undefined, justification: str(data.justification), answers };
  const errors: FormErrors = { answers: {} };
  const problems = validateSubmission(policy, { justification: values.justification, answers });
  if (problems.justification || Object.keys(problems.answers).length) Object.assign(errors, fieldErrors(problems));
  if (app.per_device) {
    const mine = await devicesOfUser(ctx.db, actor.id!);
    if (mine.length === 0) errors.summary = 'No device is registered to you, so nothing can be installed. Ask IT to register your device.';
    else if (!values.deviceId) errors.device = 'Choose the device to install on.';
    else if (!mine.some((d) => d.id === values.deviceId)) errors.device = 'That device is not registered to you.';
    if (errors.device) errors.summary = 'Please fix the highlighted fields.';
  }
  if (errors.summary) return { form: await requestForm(ctx, actor, app.id, values, errors) };
  try {
    const r = await ctx.requests.submit(actor, {
      applicationId: app.id,
      requesterId: actor.id!,
      deviceId: app.per_device ? values.deviceId : undefined,
      justification: values.justification ?? null,
      answers,
      source: 'chat',
    });
    return { id: r.id };
  } catch (e) {
    if (!isAppError(e)) throw e;
    const details = (e.details ?? {}) as { fields?: FieldErrors; field?: string };
    const err: FormErrors = details.fields
      ? fieldErrors(details.fields)
      : details.field === 'clientGuid'
        ? { device: e.message, summary: 'Please fix the highlighted fields.' }
        : { summary: e.message };
    return { form: await requestForm(ctx, actor, app.id, values, err) };
  }
}

const shortDate = (iso: string) => readableUtc(iso).slice(0, 10);

export async function myRequests(ctx: AppContext, actor: Actor): Promise<AdaptiveCard> {
  const mine = await listRequests(ctx.db, { requesterId: actor.id! }, 10);
  const waiting = await listRequests(ctx.db, { pendingForApproverId: actor.id! }, 10);
  const waitingTotal = await countRequests(ctx.db, { pendingForApproverId: actor.id! });
  const changes = await ctx.changes.pendingFor(actor.id!);
  const reviews = await ctx.reviews.list({ reviewerId: actor.id! }, 10);
  const myChanges = await ctx.changes.pendingBy(actor.id!, 5);
  const requests: ListItem[] = [
    // open it to cancel: the change card offers Cancel to its requester
    ...myChanges.map((c) => ({
      kind: 'change' as const,
      id: c.id,
      title: `Your change to ${c.resourceType} "${plainText(c.resourceId)}"`,
      status: 'pending',
      subtitle: `waiting for another admin · since ${shortDate(c.createdAt)}`,
    })),
    ...mine.items.map((r) => ({
      kind: 'request' as const,
      id: r.id,
      title: r.application.name,
      status: r.status,
      subtitle: `${r.device ? `${r.device.name} · ` : ''}requested ${shortDate(r.createdAt)}${r.decidedBy && r.status !== 'pending' ? ` · ${r.status} by ${r.decidedBy}` : ''}`,
    })),
  ];
  const approvals: ListItem[] = [
    ...waiting.items.map((r) => ({
      kind: 'request' as const,
      id: r.id,
      title: `${r.application.name} for ${r.requester?.displayName ?? 'a device'}`,
      subtitle: `${r.device ? `${r.device.name} · ` : ''}since ${shortDate(r.createdAt)}`,
    })),
    ...changes.map((c) => ({
      kind: 'change' as const,
      id: c.id,
      title: `Change to ${c.resourceType} "${plainText(c.resourceId)}"`,
      subtitle: `by ${c.requester.label} · since ${shortDate(c.createdAt)}`,
    })),
    ...reviews.items.map((v) => ({
      kind: 'review' as const,
      id: v.id,
      title: `Access review: ${v.application.name} for ${v.requester?.displayName ?? 'a device'}`,
      subtitle: `${v.device ? `${v.device.name} · ` : ''}answer by ${shortDate(v.dueAt)}`,
    })),
  ];
  const more =
    waitingTotal > waiting.items.length
      ? `Showing the ${waiting.items.length} newest of ${waitingTotal} requests waiting on you; decide these and the next ones show here.`
      : null;
  return myRequestsCard(requests, approvals, more);
}

export async function changeForm(
  ctx: AppContext,
  values: ChangeFormInput['values'],
  errors?: ChangeFormInput['errors'],
): Promise<AdaptiveCard> {
  return changeFormCard({ resourceTypes: await protectedResourceTypes(ctx.db), values, errors });
}

function parseJson(text: string | undefined, field: 'before' | 'after', errors: NonNullable<ChangeFormInput['errors']>): unknown {
  if (text === undefined || text.trim() === '') {
    if (field === 'after') errors.after = 'Describe the resource after the change.';
    return null;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    errors[field] = `This is not valid JSON: ${(e as Error).message}`;
    return undefined;
  }
}

export async function submitChangeFromCard(ctx: AppContext, actor: Actor, data: Data): Promise<{ id: string } | { form: AdaptiveCard }> {
  const values = {
    resourceType: str(data.resourceType),
    resourceId: str(data.resourceId),
    before: str(data.before),
    after: str(data.after),
    justification: str(data.justification),
  };
  const errors: NonNullable<ChangeFormInput['errors']> = {};
  const types = await protectedResourceTypes(ctx.db);
  if (!values.resourceType || !types.includes(values.resourceType)) errors.resourceType = 'Choose one of the protected resource types.';
  if (!values.resourceId?.trim()) errors.resourceId = 'Name the resource.';
  if (!values.justification?.trim()) errors.justification = 'A business justification is required.';
  const before = parseJson(values.before, 'before', errors);
  const after = parseJson(values.after, 'after', errors);
  if (Object.keys(errors).length)
    return { form: await changeForm(ctx, values, { ...errors, summary: 'Please fix the highlighted fields.' }) };
  try {
    const c = await ctx.changes.submit(actor, {
      resourceType: values.resourceType!,
      resourceId: values.resourceId!.trim(),
      before,
      after,
      justification: values.justification!,
    });
    return { id: c.id };
  } catch (e) {
    if (!isAppError(e)) throw e;
    const field = (e.details as { field?: string } | undefined)?.field;
    const err: NonNullable<ChangeFormInput['errors']> = { summary: e.message };
    if (field === 'after' || field === 'justification' || field === 'resourceType') err[field] = e.message;
    return { form: await changeForm(ctx, values, err) };
  }
}
