import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_OPTIONS } from '../../src/process-tuning.ts';

describe('the Node options of a server process', () => {
  it('are the ones `npm start` gives Node, which the benchmark runs its servers with', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const start: string = pkg.scripts.start;
    // exec: the shell npm runs the script in gives way to Node, so a SIGTERM to npm's child (docker stop, a process
    // manager) reaches the server; dash kept itself as the parent and the server ran on, orphaned
    expect(start.split(/\s+/).slice(0, 2 + SERVER_NODE_OPTIONS.length)).toEqual(['exec', 'node', ...SERVER_NODE_OPTIONS]);
    expect(start).toMatch(/ bin\/signoff\.mjs start$/);
  });
});
