import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_OPTIONS } from '../../src/process-tuning.ts';

describe('the Node options of a server process', () => {
  it('are the ones `npm start` gives Node, which the benchmark runs its servers with', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const start: string = pkg.scripts.start;
    expect(start.split(/\s+/).slice(0, 1 + SERVER_NODE_OPTIONS.length)).toEqual(['node', ...SERVER_NODE_OPTIONS]);
    expect(start).toMatch(/ bin\/signoff\.mjs start$/);
  });
});
