import type { SlackView } from './slack-api.ts';
import { plain, section } from './slack-format.ts';
import { BLOCK, CALLBACK } from './slack-ids.ts';
import type { ViewState } from './slack-request-modal.ts';

/** The `/signoff change` modal: a protected resource's before and after, and why. */
export function changeModal(resourceTypes: string[]): SlackView {
  const json = (block: string, label: string, hint: string) => ({
    type: 'input',
    block_id: block,
    label: plain(label),
    hint: plain(hint, 150),
    element: { type: 'plain_text_input', action_id: 'value', multiline: true, max_length: 3000 },
  });
  return {
    type: 'modal',
    callback_id: CALLBACK.changeModal,
    title: plain('Propose a change', 24),
    submit: plain('Submit for approval', 24),
    close: plain('Cancel', 24),
    blocks: [
      section("Changes to protected resources need another admin's approval. You cannot approve your own change."),
      resourceTypes.length
        ? {
            type: 'input',
            block_id: BLOCK.changeType,
            label: plain('Resource type'),
            element: { type: 'static_select', action_id: 'value', options: resourceTypes.map((t) => ({ text: plain(t), value: t })) },
          }
        : section(':warning: No change policy protects any resource type yet, so there is nothing to approve.'),
      {
        type: 'input',
        block_id: BLOCK.changeId,
        label: plain('Resource id'),
        element: { type: 'plain_text_input', action_id: 'value', max_length: 500 },
      },
      json(BLOCK.changeBefore, 'Current definition (JSON)', 'The resource as it is now, as JSON.'),
      json(BLOCK.changeAfter, 'Proposed definition (JSON)', 'The resource as it should be, as JSON.'),
      {
        type: 'input',
        block_id: BLOCK.changeJustification,
        label: plain('Business justification'),
        element: { type: 'plain_text_input', action_id: 'value', multiline: true, max_length: 2000 },
      },
    ],
  };
}

export interface ChangeSubmission {
  resourceType?: string;
  resourceId?: string;
  before?: unknown;
  after?: unknown;
  justification?: string;
}

/** Parses the modal; JSON problems come back keyed by block for inline errors. */
export function parseChangeSubmission(state: ViewState): { value: ChangeSubmission; errors: Record<string, string> } {
  const text = (block: string) => {
    const v = state[block]?.value;
    return (v?.selected_option?.value ?? v?.value ?? '').trim();
  };
  const errors: Record<string, string> = {};
  const parse = (block: string) => {
    const raw = text(block);
    if (!raw) {
      errors[block] = 'Enter the definition as JSON.';
      return undefined;
    }
    try {
      return JSON.parse(raw) as unknown;
    } catch (e) {
      errors[block] = `This is not valid JSON: ${(e as Error).message.slice(0, 120)}`;
      return undefined;
    }
  };
  const value: ChangeSubmission = {
    resourceType: text(BLOCK.changeType) || undefined,
    resourceId: text(BLOCK.changeId) || undefined,
    before: parse(BLOCK.changeBefore),
    after: parse(BLOCK.changeAfter),
    justification: text(BLOCK.changeJustification) || undefined,
  };
  if (!value.resourceType) errors[BLOCK.changeType] = 'Choose the resource type.';
  if (!value.resourceId) errors[BLOCK.changeId] = 'Enter the resource id.';
  if (!value.justification) errors[BLOCK.changeJustification] = 'A business justification is required.';
  return { value, errors };
}

/** Maps a core error's `details.field` to the block that should show it. */
export function changeFieldBlock(field: unknown): string {
  switch (field) {
    case 'resourceType':
      return BLOCK.changeType;
    case 'resourceId':
      return BLOCK.changeId;
    case 'before':
      return BLOCK.changeBefore;
    case 'after':
      return BLOCK.changeAfter;
    case 'justification':
      return BLOCK.changeJustification;
    default:
      return BLOCK.changeAfter;
  }
}
