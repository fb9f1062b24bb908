/**
 * Server-rendered HTML with escaping by default: `html` escapes every interpolated value unless it is itself
 * Html (another fragment), and joins arrays. No template engine, no build step.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

type Value = Html | string | number | boolean | null | undefined | Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** 2026-12-01 14:03 UTC: one readable form everywhere on the pages. */
export function when_(iso: string | Date | null | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export const timeEl = (iso: string | Date | null | undefined): Html =>
  iso ? html`<time datetime="${new Date(iso).toISOString()}">${when_(iso)}</time>` : html`-`;

/** A status as a labelled badge: the word carries the meaning, colour only repeats it. */
export const badge = (status: string): Html =>
  html`<span class="badge badge-${status.replace(/[^a-z_-]/g, '')}">${status.replace(/_/g, ' ')}</span>`;

export const shortId = (id: string) => id.slice(0, 8);
