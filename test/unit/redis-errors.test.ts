import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/logger.ts';
import { reportRedisError } from '../../src/integrations/queue/connection.ts';

const recording = () => {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) } as unknown as Logger;
  return { log, lines };
};
const refused = (port: number) => Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`), { code: 'ECONNREFUSED' });

describe('Redis errors in the log', () => {
  it('say once that Redis cannot be reached, however many queues and workers report each reconnect', () => {
    const { log, lines } = recording();
    for (let i = 0; i < 50; i++) reportRedisError(log, refused(61001), { queue: `q${i % 4}` });
    expect(lines).toEqual([
      {
        obj: { err: 'connect ECONNREFUSED 127.0.0.1:61001' },
        msg: 'Redis cannot be reached; retrying (is it running, and is REDIS_URL right?)',
      },
    ]);
    // another outage (another address) is news
    reportRedisError(log, refused(61002));
    expect(lines).toHaveLength(2);
  });
  it('log every other error, with its stack', () => {
    const { log, lines } = recording();
    const script = new Error('ERR Error running script: @user_script:1: wrong number of arguments');
    reportRedisError(log, script, { queue: 'webhooks' });
    reportRedisError(log, script, { queue: 'webhooks' });
    expect(lines).toEqual(Array(2).fill({ obj: { err: script, queue: 'webhooks' }, msg: 'queue error' }));
  });
});
