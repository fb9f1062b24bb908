import { readableUtc } from '../../src/core/clock.ts';
import { APPROVERS_CHANNEL } from './teams-harness.ts';

/**
 * One driver per chat platform, so the channel-contract suite states each scenario once. A driver acts as a person
 * would on that platform (a signed Slack request, a Teams invoke) and reads what the platform's fake received, in
 * platform-neutral terms: where a copy is (`channel:<group>`, `dm:<person>`), what it shows (dates as
 * `2026-01-05 09:07 UTC`), which buttons are left. Where the platforms genuinely differ, the driver hides it.
 */
export type Person = 'ada' | 'bob' | 'cyd' | 'dan';
export const PEOPLE: Person[] = ['ada', 'bob', 'cyd', 'dan'];
export const DISPLAY: Record<Person, string> = { ada: 'Ada Admin', bob: 'Bob User', cyd: 'Cyd Approver', dan: 'Dan Security' };
export const SECURITY_CHANNEL = '19:security@thread.tacv2';

export interface TestApp {
  id: string;
  name: string;
}

/** One message about a request that Signoff keeps up to date: an approver prompt or the requester's own copy. */
export interface Copy {
  platform: 'slack' | 'teams';
  kind: 'prompt' | 'requester';
  /** `channel:<approver group>` or `dm:<person>` */
  where: string;
  /** the stage a prompt was posted for */
  stage: number;
  /** what it shows now (dates normalised to readableUtc) */
  text: string;
  /** what can still be pressed on it (Teams: `refresh` means per-viewer buttons are still coming) */
  buttons: string[];
  /** how often it was changed in place */
  updates: number;
  /** the platform's own handle of the message */
  ref: { conversation: string; message: string; requestId: string };
}

export interface Said {
  /** whether the click or command decided something */
  decided: boolean;
  /** what the person who acted was told (dates normalised) */
  said: string;
}

export interface ChannelDriver {
  readonly name: 'slack' | 'teams';
  /** `who` asks for `app` the way people do on this platform; returns the new request's id */
  submit(who: Person, app: TestApp, justification: string): Promise<string>;
  /** every prompt and requester copy of the request on this platform, as it looks now */
  copiesOf(requestId: string): Promise<Copy[]>;
  /** `who` presses `verb` on `copy` (with a reason where one is asked for) */
  click(copy: Copy, verb: 'approve' | 'deny', who: Person, reason?: string): Promise<Said>;
  /** thread replies under `copy` (in a personal chat or DM without threads: follow-ups about the same request), mentions as `@Display Name` */
  remindersUnder(copy: Copy): Promise<string[]>;
  /** what `who` can press on `copy` now (Teams: their own view, through the card's refresh) */
  buttonsFor(copy: Copy, who: Person): Promise<string[]>;
  /** messages posted to `who`'s DM / personal chat that are not copies (outcome notices), oldest first */
  repliesTo(who: Person): Promise<string[]>;
  /** the platform's own revoke / reapprove command, then its reason form */
  command(who: Person, verb: 'revoke' | 'reapprove', requestId: string, reason: string): Promise<Said>;
}

/** Dates as people read them everywhere: Slack date tokens, Teams DATE/TIME functions and ISO-with-seconds all become readableUtc. */
export function normaliseDates(text: string): string {
  return text
    .replace(/<!date\^(\d+)\^[^|>]*\|[^>]*>/g, (_, s: string) => readableUtc(new Date(Number(s) * 1000)))
    .replace(/\{\{DATE\(([^,]+), SHORT\)\}\} \{\{TIME\(\1\)\}\}/g, (_, iso: string) => readableUtc(iso))
    .replace(/(\d{4}-\d{2}-\d{2} \d{2}:\d{2}):\d{2} UTC/g, '$1 UTC');
}

export const groupOfChannel = (id: string) =>
  id === 'C0APPROVE' || id === APPROVERS_CHANNEL ? 'it-approvers' : id === 'C0SECURITY' || id === SECURITY_CHANNEL ? 'security' : id;
