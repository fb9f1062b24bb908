import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildTeamsPackage, renderManifest } from '../../scripts/teams-package-lib.ts';

const APP_ID = '11111111-2222-4333-8444-555555555555';
const pngSize = (b: Buffer) => ({
  signature: b.subarray(1, 4).toString('ascii'),
  width: b.readUInt32BE(16),
  height: b.readUInt32BE(20),
  colorType: b[25],
});

describe('Teams app package', () => {
  it('zips a manifest with the bot id and commands, and icons of the sizes Teams requires', () => {
    const out = mkdtempSync(join(tmpdir(), 'signoff-teams-'));
    const { path, warnings } = buildTeamsPackage({ MICROSOFT_APP_ID: APP_ID, PUBLIC_URL: 'https://signoff.contoso.com' }, out);
    expect(warnings).toEqual([]);
    expect(execFileSync('unzip', ['-t', path]).toString()).toContain('No errors detected');
    const manifest = JSON.parse(execFileSync('unzip', ['-p', path, 'manifest.json']).toString());
    expect(manifest).toMatchObject({
      id: APP_ID,
      manifestVersion: '1.17',
      icons: { color: 'color.png', outline: 'outline.png' },
      validDomains: ['signoff.contoso.com'],
    });
    expect(manifest.bots[0].botId).toBe(APP_ID);
    expect(manifest.bots[0].commandLists[0].commands.map((c: { title: string }) => c.title)).toEqual([
      'request',
      'my requests',
      'change',
      'revoke',
      'reapprove',
      'help',
    ]);
    expect(manifest.name.short.length).toBeLessThanOrEqual(30);
    expect(manifest.description.short.length).toBeLessThanOrEqual(80);
    expect(pngSize(execFileSync('unzip', ['-p', path, 'color.png']))).toEqual({ signature: 'PNG', width: 192, height: 192, colorType: 6 });
    const outline = execFileSync('unzip', ['-p', path, 'outline.png']);
    expect(pngSize(outline)).toEqual({ signature: 'PNG', width: 32, height: 32, colorType: 6 });
    expect(readFileSync('teams/outline.png').equals(outline)).toBe(true);
  });

  it('refuses to build without a real app id and warns about a non-https public URL', () => {
    const template = readFileSync('teams/manifest.json', 'utf8');
    expect(() => renderManifest(template, {})).toThrow(/MICROSOFT_APP_ID must be set/);
    expect(() => renderManifest(template, { MICROSOFT_APP_ID: 'my-bot' })).toThrow(/GUID/);
    expect(renderManifest(template, { MICROSOFT_APP_ID: APP_ID, PUBLIC_URL: 'http://localhost:3978' }).warnings[0]).toMatch(/not https/);
  });
});
