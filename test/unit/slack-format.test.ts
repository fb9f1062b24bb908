import { describe, expect, it } from 'vitest';
import { clip, esc } from '../../src/bots/slack/slack-format.ts';

describe('clip', () => {
  it('cuts long text with an ellipsis but never inside an escape or a <…> sequence', () => {
    expect(clip('short', 10)).toBe('short');
    const escaped = esc('R&D & Ops & more'); // R&amp;D &amp; Ops &amp; more
    expect(clip(escaped, 9)).toBe('R&amp;D …');
    expect(clip('approved <!date^1767603600^{date_short}|2026-01-05>', 20)).toBe('approved …');
    expect(clip('a'.repeat(20), 10)).toBe(`${'a'.repeat(9)}…`);
  });
});
