import type { ApplicationRow, DeviceRow } from '../../core/directory.ts';
import type { FieldErrors } from '../../core/policy-evaluation.ts';
import type { PolicyDefinition, Question } from '../../core/policy-schema.ts';
import type { Blocks, SlackView } from './slack-api.ts';
import { clip, context, esc, md, plain, section } from './slack-format.ts';
import { ACTION, BLOCK, CALLBACK } from './slack-ids.ts';

/** Pure builders and parsers for the request modal and the approver's reason modal. */
export interface RequestModalInput {
  app?: ApplicationRow & { policy: PolicyDefinition };
  devices: DeviceRow[];
  /** a line above the form, e.g. "No application called X" */
  notice?: string;
}

export interface RequestModalMeta {
  appId?: string;
}

const option = (text: string, value: string) => ({ text: plain(text, 75), value: clip(value, 150) });

export function appOption(app: { id: string; name: string }) {
  return option(app.name, app.id);
}

function questionInput(q: Question) {
  const block = { type: 'input', block_id: BLOCK.question(q.id), optional: !q.required, label: plain(q.text, 2000) };
  if (q.type === 'choice') {
    return {
      ...block,
      element: {
        type: 'static_select',
        action_id: 'value',
        placeholder: plain('Choose one'),
        options: q.options!.map((o) => option(o, o)),
      },
    };
  }
  if (q.type === 'multichoice') {
    return {
      ...block,
      element: {
        type: 'multi_static_select',
        action_id: 'value',
        placeholder: plain('Choose one or more'),
        options: q.options!.map((o) => option(o, o)),
      },
    };
  }
  const long = (q.maxLength ?? 3000) > 150;
  return {
    ...block,
    element: {
      type: 'plain_text_input',
      action_id: 'value',
      multiline: long,
      ...(q.minLength ? { min_length: Math.min(q.minLength, 3000) } : {}),
      ...(q.maxLength ? { max_length: Math.min(q.maxLength, 3000) } : {}),
    },
  };
}

export function requestModal(input: RequestModalInput): SlackView {
  const blocks: Blocks = [];
  if (input.notice) blocks.push(section(input.notice));
  blocks.push({
    type: 'input',
    block_id: BLOCK.app,
    dispatch_action: true,
    label: plain('Application'),
    element: {
      type: 'external_select',
      action_id: ACTION.modalApp,
      placeholder: plain('Search the catalog'),
      min_query_length: 0,
      ...(input.app ? { initial_option: appOption(input.app) } : {}),
    },
  });
  const app = input.app;
  if (app) {
    if (app.description) blocks.push(context(esc(clip(app.description, 500))));
    if (app.per_device) {
      if (input.devices.length === 0) {
        blocks.push({
          ...section(
            ':warning: *Device*\nNo device is registered to you, and this application is installed per device. Ask IT to register your device as yours.',
          ),
          block_id: BLOCK.device,
        });
      } else {
        blocks.push({
          type: 'input',
          block_id: BLOCK.device,
          label: plain('Device'),
          element: {
            type: 'static_select',
            action_id: 'value',
            placeholder: plain('Which device?'),
            options: input.devices.map((d) => option(d.name, d.id)),
            ...(input.devices.length === 1 ? { initial_option: option(input.devices[0]!.name, input.devices[0]!.id) } : {}),
          },
        });
      }
    }
    if (app.policy.justification !== 'none') {
      blocks.push({
        type: 'input',
        block_id: BLOCK.justification,
        optional: app.policy.justification === 'optional',
        label: plain('Business justification'),
        hint: plain('Approvers see this. Say what you need it for.', 150),
        element: { type: 'plain_text_input', action_id: 'value', multiline: true, max_length: 2000 },
      });
    }
    for (const q of app.policy.questions) blocks.push(questionInput(q));
    const stages = app.policy.stages.map((s, i) => `${i + 1}. ${esc(s.approvers.join(', '))}`).join('  ');
    blocks.push(context(`Approval: ${stages}`));
  }
  const meta: RequestModalMeta = { appId: app?.id };
  return {
    type: 'modal',
    callback_id: CALLBACK.requestModal,
    private_metadata: JSON.stringify(meta),
    title: plain('Request software', 24),
    submit: plain('Submit request', 24),
    close: plain('Cancel', 24),
    blocks,
  };
}

interface StateValue {
  type: string;
  value?: string | null;
  selected_option?: { value: string } | null;
  selected_options?: { value: string }[];
}
export type ViewState = Record<string, Record<string, StateValue>>;

function readValue(v: StateValue | undefined): string | string[] | undefined {
  if (!v) return undefined;
  if (v.type === 'multi_static_select') return (v.selected_options ?? []).map((o) => o.value);
  if (v.selected_option !== undefined) return v.selected_option?.value ?? undefined;
  return v.value ?? undefined;
}

export interface RequestSubmission {
  appId?: string;
  deviceId?: string;
  justification?: string;
  answers: Record<string, unknown>;
}

export function parseRequestSubmission(state: ViewState, policy: PolicyDefinition | undefined, meta: RequestModalMeta): RequestSubmission {
  const appId = (readValue(state[BLOCK.app]?.[ACTION.modalApp]) as string | undefined) ?? meta.appId;
  const answers: Record<string, unknown> = {};
  for (const q of policy?.questions ?? []) {
    const v = readValue(state[BLOCK.question(q.id)]?.value);
    if (v !== undefined && v !== '') answers[q.id] = v;
  }
  // a hand-made payload may carry anything: what is not text is no answer
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    appId,
    deviceId: text(readValue(state[BLOCK.device]?.value)),
    justification: text(readValue(state[BLOCK.justification]?.value)),
    answers,
  };
}

/** FieldErrors from the core, keyed by the modal's block ids for `response_action: 'errors'`. */
export function fieldErrorsToBlocks(e: FieldErrors): Record<string, string> {
  const out: Record<string, string> = {};
  if (e.justification) out[BLOCK.justification] = e.justification;
  for (const [id, msg] of Object.entries(e.answers)) out[BLOCK.question(id)] = msg;
  return out;
}

export interface ReasonMeta {
  kind: 'request' | 'change' | 'review';
  id: string;
  decision: 'approve' | 'deny' | 'reject' | 'remove' | 'revoke' | 'reapprove';
  /** the message the button was on, for the ephemeral answer */
  channel?: string;
  /** the stage the prompt was for: the decision applies to it alone, never revoking a request decided since */
  stage?: number;
  /** opened from App Home, which is redrawn after the decision so the item leaves "Waiting on you" */
  home?: boolean;
  /** revoke / reapprove: the version the modal was opened on; anything decided since is told, not overridden */
  version?: number;
}

const verbs: Record<ReasonMeta['decision'], string> = {
  approve: 'Approve',
  deny: 'Deny',
  remove: 'Remove',
  reject: 'Reject',
  revoke: 'Revoke',
  reapprove: 'Reapprove',
};
const reasonLabels: Partial<Record<ReasonMeta['decision'], string>> = {
  approve: 'Why do you approve?',
  deny: 'Why is it denied?',
  revoke: 'Why is the access revoked?',
  reapprove: 'Why is it approved after all?',
};

export function reasonModal(meta: ReasonMeta, summary: string, required: boolean): SlackView {
  const verb = verbs[meta.decision];
  const label =
    meta.kind === 'change'
      ? 'Notes for the requester'
      : meta.kind === 'review'
        ? 'Why is this access no longer needed?'
        : reasonLabels[meta.decision]!;
  return {
    type: 'modal',
    callback_id:
      meta.kind === 'change' ? CALLBACK.changeDecision : meta.kind === 'review' ? CALLBACK.reviewRemove : CALLBACK.decisionReason,
    private_metadata: JSON.stringify(meta),
    title: plain(meta.kind === 'review' ? 'Remove access' : `${verb} ${meta.kind}`, 24),
    submit: plain(verb, 24),
    close: plain('Back', 24),
    blocks: [
      { type: 'section', text: md(summary) },
      {
        type: 'input',
        block_id: BLOCK.reason,
        optional: !required,
        label: plain(label),
        hint: plain(
          required ? 'Required. The requester and the audit log see this.' : 'Optional. The requester and the audit log see this.',
          150,
        ),
        element: { type: 'plain_text_input', action_id: 'value', multiline: true, max_length: 2000 },
      },
    ],
  };
}

export const readReason = (state: ViewState) => (readValue(state[BLOCK.reason]?.value) as string | undefined)?.trim() ?? '';

export function infoModal(title: string, blocks: Blocks): SlackView {
  return { type: 'modal', callback_id: CALLBACK.info, title: plain(title, 24), close: plain('Close', 24), blocks };
}

export const loadingModal = () => infoModal('Signoff', [section(':hourglass_flowing_sand: Loading…')]);
