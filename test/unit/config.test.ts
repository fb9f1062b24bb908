import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('configuration', () => {
  it('serves a local machine with defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 3978,
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/signoff',
      REDIS_URL: 'redis://127.0.0.1:6379',
      PUBLIC_URL: 'http://localhost:3978',
    });
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
    expect(() => loadConfig({ NODE_ENV: 'production', TEAMS_EMULATOR: '1' })).toThrow(
      /TEAMS_EMULATOR: must not be set when NODE_ENV=production/,
    );
  });
  it('refuses a number or duration that is not one, naming the key and what it wants', () => {
    const numeric = [
      'PORT',
      'MAX_BODY_BYTES',
      'DATABASE_CONNECT_TIMEOUT_MS',
      'DATABASE_POOL_SIZE',
      'WEBHOOK_TIMEOUT_MS',
      'WEBHOOK_MAX_ATTEMPTS',
      'OUTBOX_RECONCILE_MS',
      'SWEEP_INTERVAL_MS',
      'DEVICE_MANAGER_TIMEOUT_MS',
      'DEVICE_MANAGER_MAX_ATTEMPTS',
      'RETENTION_DAYS',
      'AUDIT_SEAL_INTERVAL_MS',
      'AUDIT_CHECKPOINT_INTERVAL_MS',
    ];
    for (const key of numeric) {
      for (const bad of ['ten', '1e3', '10.5', '-1', '5s', '0x10', '99999999999999999999']) {
        expect(() => loadConfig({ [key]: bad }), `${key}=${bad}`).toThrow(
          new RegExp(`${key}: must be a whole number of \\w[^(]* from \\d+ to \\d+ \\(got "${bad.replace('.', '\\.')}"\\)`),
        );
      }
    }
    // a timer longer than setTimeout can hold would fire at once
    expect(() => loadConfig({ SWEEP_INTERVAL_MS: '2147483648' })).toThrow(
      /SWEEP_INTERVAL_MS: must be a whole number of milliseconds from 10 to 2147483647/,
    );
    expect(() => loadConfig({ WEBHOOK_MAX_ATTEMPTS: '51' })).toThrow(
      /WEBHOOK_MAX_ATTEMPTS: must be a whole number of attempts from 1 to 50/,
    );
    for (const key of ['LINK_TOKEN_TTL', 'SIGNIN_LINK_TTL', 'WEB_SESSION_TTL']) {
      for (const bad of ['forever', '14 days', 'P', 'PT', 'P0D', 'P400D', '-P1D']) {
        expect(() => loadConfig({ [key]: bad }), `${key}=${bad}`).toThrow(new RegExp(`${key}: must be an ISO 8601 duration such as P14D`));
      }
    }
    // all of them at once, each named
    const all = (() => {
      try {
        loadConfig({ PORT: 'x', RETENTION_DAYS: 'x', LINK_TOKEN_TTL: 'x' });
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(all.match(/^\s+- (PORT|RETENTION_DAYS|LINK_TOKEN_TTL):/gm)).toHaveLength(3);
  });
  it('takes blank numbers as their default and whole numbers as given', () => {
    expect(loadConfig({ PORT: '', WEBHOOK_TIMEOUT_MS: ' 2500 ', RETENTION_DAYS: '0', LINK_TOKEN_TTL: 'PT12H' })).toMatchObject({
      PORT: 3978,
      WEBHOOK_TIMEOUT_MS: 2500,
      RETENTION_DAYS: 0,
      LINK_TOKEN_TTL: 'PT12H',
    });
    expect(loadConfig({}).DATABASE_CONNECT_TIMEOUT_MS).toBe(5000);
    expect(loadConfig({}).DATABASE_POOL_SIZE).toBe(20);
    expect(() => loadConfig({ DATABASE_POOL_SIZE: '0' })).toThrow(
      /DATABASE_POOL_SIZE: must be a whole number of connections from 1 to 1000/,
    );
  });
  it('splits the webhook allow-list, and refuses an entry that is no host, address or network', () => {
    expect(
      loadConfig({ WEBHOOK_ALLOW_HOSTS: '127.0.0.1, 10.0.0.0/8,[::1],fd00::/8, dm.example.com,localhost' }).WEBHOOK_ALLOW_HOSTS,
    ).toEqual(['127.0.0.1', '10.0.0.0/8', '[::1]', 'fd00::/8', 'dm.example.com', 'localhost']);
    expect(() => loadConfig({ WEBHOOK_ALLOW_HOSTS: '10.0.0.0/99' })).toThrow(
      /WEBHOOK_ALLOW_HOSTS: "10.0.0.0\/99": an IPv4 prefix is at most \/32/,
    );
    expect(() => loadConfig({ WEBHOOK_ALLOW_HOSTS: 'foo bar' })).toThrow(/WEBHOOK_ALLOW_HOSTS: "foo bar" is not a host name/);
    expect(() => loadConfig({ WEBHOOK_ALLOW_HOSTS: '999.1.1.1/8' })).toThrow(
      /WEBHOOK_ALLOW_HOSTS: "999.1.1.1\/8": 999.1.1.1 is not an IP address/,
    );
    expect(() => loadConfig({ WEBHOOK_ALLOW_HOSTS: '999.1.1.1' })).toThrow(/WEBHOOK_ALLOW_HOSTS: "999.1.1.1" is not a host name/);
  });
  it('refuses an SMTP URL that is not one, and a database URL that names no database', () => {
    expect(loadConfig({ SMTP_URL: 'smtps://u:p@mail.contoso.com:465' }).SMTP_URL).toBe('smtps://u:p@mail.contoso.com:465');
    for (const bad of ['garbage', 'http://x', 'smtp://'])
      expect(() => loadConfig({ SMTP_URL: bad })).toThrow(/SMTP_URL: must be an smtp:\/\//);
    // pg would connect to the user's own database (postgres, shared) and migrate it
    for (const bad of ['postgres://postgres@127.0.0.1:5432/', 'postgres://postgres@127.0.0.1:5432']) {
      expect(() => loadConfig({ DATABASE_URL: bad })).toThrow(/DATABASE_URL: must name a database/);
    }
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x/y' })).toThrow(/DATABASE_URL: must be a postgres:\/\/ URL/);
    expect(() => loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/%20' })).toThrow(/DATABASE_URL: must name a database/);
    expect(loadConfig({ DATABASE_URL: 'postgresql://u@db.contoso.com/signoff' }).DATABASE_URL).toBe(
      'postgresql://u@db.contoso.com/signoff',
    );
  });
  it('takes URLs of the scheme each key names only, and never prints the password one carries', () => {
    expect(loadConfig({ REDIS_URL: 'rediss://:pw@cache.contoso.com:6380' }).REDIS_URL).toBe('rediss://:pw@cache.contoso.com:6380');
    // ioredis read an http URL as a unix socket path
    expect(() => loadConfig({ REDIS_URL: 'http://:redispw@h' })).toThrow(
      /REDIS_URL: must be a redis:\/\/ URL \(got "http:\/\/:\*\*\*@h"\)/,
    );
    expect(() => loadConfig({ PUBLIC_URL: 'javascript:alert(1)' })).toThrow(/PUBLIC_URL: must be a http\(s\):\/\/ URL/);
    try {
      loadConfig({ DATABASE_URL: 'postgres://postgres:s3cretpw@127.0.0.1:5432/' });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toContain('postgres://postgres:***@127.0.0.1:5432/');
      expect((e as Error).message).not.toContain('s3cretpw');
    }
  });
});
