import { describe, expect, it } from 'vitest';
import { addressRefusal, assessOutboundUrl, checkOutboundUrl, parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';

const none = parseAllowList([]);

describe('outbound URL safety', () => {
  it.each([
    '127.0.0.1',
    '127.8.9.10',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.10',
    '100.64.0.1',
    '100.127.255.254',
    '169.254.169.254',
    '169.254.1.1',
    '0.0.0.0',
    '::1',
    '::',
    'fd00:ec2::254',
    'fc00::1',
    'fe80::1',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
    '224.0.0.1',
  ])('refuses %s', (ip) => {
    expect(addressRefusal(ip, none)).not.toBeNull();
  });

  it.each(['8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows public %s', (ip) => {
    expect(addressRefusal(ip, none)).toBeNull();
  });

  it('names metadata addresses as such', () => {
    expect(addressRefusal('169.254.169.254', none)).toMatch(/metadata/);
    expect(addressRefusal('fd00:ec2::254', none)).toMatch(/metadata/);
  });

  it('refuses non-http schemes, credentials and private literals', async () => {
    await expect(checkOutboundUrl('ftp://example.com/x', [])).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(checkOutboundUrl('file:///etc/passwd', [])).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(checkOutboundUrl('https://user:pw@8.8.8.8/', [])).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(checkOutboundUrl('http://[::1]:8080/', [])).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(checkOutboundUrl('http://169.254.169.254/latest/meta-data/', [])).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(checkOutboundUrl('not a url', [])).rejects.toMatchObject({ code: 'unsafe_url' });
  });

  it('resolves names first: localhost is loopback', async () => {
    const r = await assessOutboundUrl('http://localhost:3000/hooks', []);
    expect(r).toMatchObject({ ok: false, kind: 'refused' });
  });

  it('accepts public literals and allow-listed hosts and CIDRs', async () => {
    await expect(checkOutboundUrl('https://8.8.8.8/hooks', [])).resolves.toBeUndefined();
    await expect(checkOutboundUrl('http://localhost:3000/hooks', ['localhost'])).resolves.toBeUndefined();
    await expect(checkOutboundUrl('http://10.20.30.40/hooks', ['10.20.0.0/16'])).resolves.toBeUndefined();
    await expect(checkOutboundUrl('http://10.21.30.40/hooks', ['10.20.0.0/16'])).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(checkOutboundUrl('http://[fd12::5]/hooks', ['fd12::/16'])).resolves.toBeUndefined();
  });

  it('saves a name that does not resolve yet (each send checks it again) but never a private one', async () => {
    await expect(checkOutboundUrl('https://dm.example.invalid/hooks', [])).resolves.toBeUndefined();
    expect(await assessOutboundUrl('https://dm.example.invalid/hooks', [])).toMatchObject({ ok: false, kind: 'unresolvable' });
    await expect(checkOutboundUrl('http://localhost/hooks', [])).rejects.toMatchObject({ code: 'unsafe_url' });
  });
});
