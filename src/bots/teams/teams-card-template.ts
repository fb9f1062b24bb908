import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ACData from 'adaptivecards-templating';
import { PROJECT_ROOT } from '../../paths.ts';

/**
 * Pure renderers: view data in, Adaptive Card JSON out. Layout lives in cards/*.json so an admin can restyle
 * without touching code; these functions only decide what the viewer may see and do.
 */
export type AdaptiveCard = Record<string, unknown> & { type: 'AdaptiveCard' };
export type CardName =
  | 'request'
  | 'change'
  | 'request-form'
  | 'app-picker'
  | 'welcome'
  | 'my-requests'
  | 'notice'
  | 'change-form'
  | 'review';
export type Tone = 'info' | 'success' | 'error' | 'warning';

const cardsDir = `${join(PROJECT_ROOT, 'cards')}/`;
const templates = new Map<CardName, unknown>();

function template(name: CardName): unknown {
  let t = templates.get(name);
  if (!t) {
    t = JSON.parse(readFileSync(`${cardsDir}${name}.json`, 'utf8'));
    templates.set(name, t);
  }
  return t;
}

/** Binds a template; properties whose `$when` was false come back as null and are dropped. */
export function renderTemplate(name: CardName, data: Record<string, unknown>): AdaptiveCard {
  const expanded = new ACData.Template(template(name)).expand({ $root: data }) as Record<string, unknown>;
  return dropNulls(expanded) as AdaptiveCard;
}

function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = dropNulls(x);
    return out;
  }
  return v;
}

// Teams shows a card of at most ~28 KB; user-supplied text is capped so a long justification cannot break it.
export const clip = (s: string, n = 600) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

const ZW = '\u200B';
/**
 * What people typed, shown as typed: Teams renders markdown and expands {{DATE()}} in card text, so a
 * justification could carry a disguised link ("[Approve here](https://…)") into an approver's card. A zero-width
 * space breaks each construct without changing what is read.
 */
export const plainText = (s: string): string =>
  s
    .replace(/\{\{/g, `{${ZW}{`)
    .replace(/\]\s*\(/g, `]${ZW}(`)
    .replace(/[*_]/g, (m) => `${ZW}${m}`)
    .replace(/^(\s*)([-+]|\d+\.)(\s)/gm, `$1${ZW}$2$3`);
/** User text, neutralised and capped. */
export const said = (s: string, n: number) => clip(plainText(s), n);

/** RFC 3339 without milliseconds, as Adaptive Cards' DATE()/TIME() functions need. */
const rfc3339 = (iso: string) => new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z');
/** Rendered in each viewer's own locale and time zone by the Teams client. */
export const localTime = (iso: string) => `{{DATE(${rfc3339(iso)}, SHORT)}} {{TIME(${rfc3339(iso)})}}`;

export const toneStyle: Record<Tone, string> = { info: 'accent', success: 'good', error: 'attention', warning: 'warning' };

export interface Banner {
  text: string;
  tone: Tone;
}

/** What the submitter's own card says until the first decision; the notifier's first update keeps it. */
export const submittedBanner: Record<'request' | 'change', Banner> = {
  request: { text: 'Request submitted. You will hear here when it is decided.', tone: 'success' },
  change: { text: 'Change submitted for approval by another admin.', tone: 'success' },
};
