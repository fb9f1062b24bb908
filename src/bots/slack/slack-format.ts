/** Small, pure mrkdwn helpers shared by every renderer. */

/** Slack needs only these three escaped; anything else a user typed stays as typed. */
export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Keeps text inside Slack's per-field limits (section text 3000, header 150, field 2000). */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  // never end inside an escape (&amp;) or a control sequence (<!date^…|…>): Slack would show it broken
  const cut = s
    .slice(0, max - 1)
    .replace(/&[a-z]*$/, '')
    .replace(/<[^>]*$/, '');
  return `${cut}…`;
}

/** A date every reader sees in their own time zone, with the ISO instant as the fallback. */
export function slackDate(iso: string | null | undefined): string {
  if (!iso) return 'unknown time';
  const t = Math.floor(new Date(iso).getTime() / 1000);
  const fallback = new Date(iso)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  return `<!date^${t}^{date_short_pretty} at {time}|${fallback}>`;
}

/** The notification/fallback text of a message: date tokens become their plain fallback. */
export const plainDates = (text: string): string => text.replace(/<!date\^\d+\^[^|]+\|([^>]+)>/g, '$1');

export const mention = (slackId: string | null | undefined, label: string) => (slackId ? `<@${slackId}>` : esc(label));

export const quote = (text: string) =>
  text
    .split('\n')
    .map((l) => `>${esc(l)}`)
    .join('\n');

export const plain = (text: string, max = 75) => ({ type: 'plain_text' as const, text: clip(text, max), emoji: true });
export const md = (text: string) => ({ type: 'mrkdwn' as const, text: clip(text, 3000) });

export const section = (text: string) => ({ type: 'section', text: md(text) });
export const context = (...texts: string[]) => ({ type: 'context', elements: texts.map((t) => md(clip(t, 2900))) });
export const header = (text: string) => ({ type: 'header', text: plain(text, 150) });
export const divider = () => ({ type: 'divider' });

export function button(text: string, actionId: string, value: string, style?: 'primary' | 'danger') {
  return { type: 'button', text: plain(text), action_id: actionId, value, ...(style ? { style } : {}) };
}

export function fields(pairs: [string, string][]) {
  return { type: 'section', fields: pairs.slice(0, 10).map(([k, v]) => md(clip(`*${k}*\n${v}`, 2000))) };
}

/** An answer as the requester typed it: quoted like the justification, so no formatting of theirs passes for ours. */
export function formatAnswer(value: unknown): string {
  if (value === undefined || value === null || value === '') return '_(no answer)_';
  if (Array.isArray(value)) return quote(value.map((v) => String(v)).join(', '));
  return quote(clip(String(value), 1500));
}

/** A JSON value on one line, short enough for a diff row. */
export function jsonInline(v: unknown, max = 300): string {
  return clip(v === undefined ? 'undefined' : JSON.stringify(v), max);
}
