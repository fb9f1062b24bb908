/** Every action_id and callback_id Signoff puts on Slack surfaces: renderers and handlers agree through these. */
export const ACTION = {
  approve: 'signoff_request_approve',
  deny: 'signoff_request_deny',
  cancel: 'signoff_request_cancel',
  installNow: 'signoff_request_install_now',
  history: 'signoff_request_history',
  requestApp: 'signoff_request_app',
  openRequestModal: 'signoff_open_request_modal',
  changeApprove: 'signoff_change_approve',
  changeReject: 'signoff_change_reject',
  changeCancel: 'signoff_change_cancel',
  reviewKeep: 'signoff_review_keep',
  reviewRemove: 'signoff_review_remove',
  /** the application select inside the request modal: re-renders the modal for the chosen app */
  modalApp: 'signoff_modal_app',
} as const;

export const CALLBACK = {
  requestModal: 'signoff_request_modal',
  decisionReason: 'signoff_decision_reason',
  changeModal: 'signoff_change_modal',
  changeDecision: 'signoff_change_decision',
  reviewRemove: 'signoff_review_remove',
  info: 'signoff_info',
} as const;

/** block_ids of the request modal inputs; inline errors are keyed by these. */
export const BLOCK = {
  app: 'app',
  device: 'device',
  justification: 'justification',
  question: (id: string) => `q_${id}`,
  reason: 'reason',
  changeType: 'resource_type',
  changeId: 'resource_id',
  changeBefore: 'before',
  changeAfter: 'after',
  changeJustification: 'change_justification',
} as const;

/**
 * Approve / Deny buttons carry the request and the stage they were shown for, so a click on a copy left from an
 * earlier stage is told that stage is settled instead of deciding the next one. A bare id (a prompt posted before
 * buttons carried the stage) decides whatever stage is pending, and still only while the request is pending.
 */
export const promptValue = (id: string, stage: number) => `${id}:${stage}`;

export function parsePromptValue(value: string): { id: string; stage?: number } {
  const m = /^(.+):(\d{1,2})$/.exec(value);
  return m ? { id: m[1]!, stage: Number(m[2]) } : { id: value };
}
