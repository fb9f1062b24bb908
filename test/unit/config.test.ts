import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('configuration', () => {
  it('serves a local machine with defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 3978, DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/signoff', REDIS_URL: 'redis://127.0.0.1:6379', PUBLIC_URL: 'http://localhost:3978' });
  });
  it('points links at the port it listens on unless PUBLIC_URL says otherwise', () => {
    expect(loadConfig({ PORT: '4000' }).PUBLIC_URL).toBe('http://localhost:4000');
    expect(loadConfig({ PORT: '4000', PUBLIC_URL: 'https://signoff.contoso.com' }).PUBLIC_URL).toBe('https://signoff.contoso.com');
  });
  it('names every bad key and what is wrong', () => {
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'not a url', SLACK_BOT_TOKEN: 'xoxb-1' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const msg = (e as Error).message;
      expect(msg).toMatch(/PORT: .*got "eighty"/);
      expect(msg).toMatch(/DATABASE_URL: must be a postgres:\/\/ URL/);
      expect(msg).toMatch(/SLACK_SIGNING_SECRET: is required when the other Slack key is set/);
      expect(msg).not.toMatch(/xoxb-1/);
    }
  });
  it('refuses the unauthenticated Teams emulator in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', TEAMS_EMULATOR: '1' })).toThrow(/TEAMS_EMULATOR: must not be set when NODE_ENV=production/);
  });
  it('splits the webhook allow-list', () => {
    expect(loadConfig({ WEBHOOK_ALLOW_HOSTS: '127.0.0.1, 10.0.0.0/8,' }).WEBHOOK_ALLOW_HOSTS).toEqual(['127.0.0.1', '10.0.0.0/8']);
  });
});
