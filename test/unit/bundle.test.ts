import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript, run by bin/signoff.mjs before any TypeScript can be
import { bundleEntry } from '../../bin/bundle.mjs';

const ROOT = new URL('../..', import.meta.url).pathname;
const execFileAsync = promisify(execFile);
const project = mkdtempSync(join(tmpdir(), 'signoff-bundle-'));
afterAll(() => rmSync(project, { recursive: true, force: true }));

/** A project of two modules laid out as Signoff's is, so a build of it is quick and touches nothing of the repo's. */
function writeProject() {
  for (const d of ['bin', 'src/cli', 'migrations']) mkdirSync(join(project, d), { recursive: true });
  copyFileSync(join(ROOT, 'bin/bundle.mjs'), join(project, 'bin/bundle.mjs'));
  // esbuild, as the copy of bundle.mjs finds it from there
  if (!existsSync(join(project, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'));
  writeFileSync(join(project, 'package.json'), '{"type":"module"}');
  writeFileSync(join(project, 'tsconfig.json'), '{}');
  writeFileSync(join(project, 'src/greeting.ts'), "export const greeting: string = 'one';\n");
  writeFileSync(join(project, 'src/cli/main.ts'), "import { greeting } from '../greeting.ts';\nconsole.log(greeting);\n");
}
const run = (entry: string) => execFileSync(process.execPath, [entry], { encoding: 'utf8' }).trim();
const builds = () => readdirSync(join(project, 'dist')).filter((n) => n.startsWith('build-'));

describe('the bundle bin/signoff.mjs runs', () => {
  it('is built once for the sources as they are, and again when one changes', async () => {
    writeProject();
    const first = await bundleEntry(project);
    expect(run(first)).toBe('one');
    expect(await bundleEntry(project)).toBe(first);
    expect(builds()).toHaveLength(1);

    writeFileSync(join(project, 'src/greeting.ts'), "export const greeting: string = 'two';\n");
    // a second later, as an editor's save would be: the build notices the newer source
    const later = new Date(Date.now() + 1000);
    utimesSync(join(project, 'src/greeting.ts'), later, later);
    const second = await bundleEntry(project);
    expect(second).not.toBe(first);
    expect(run(second)).toBe('two');
    // the first build stays for a process that started from it and loads a chunk later
    expect(builds()).toHaveLength(2);
  });

  it('is built by one of several processes starting at once, and each runs a whole one', async () => {
    writeProject();
    writeFileSync(join(project, 'src/greeting.ts'), "export const greeting: string = 'three';\n");
    const script = `import(${JSON.stringify(join(project, 'bin/bundle.mjs'))}).then((m) => m.bundleEntry(${JSON.stringify(project)})).then(console.log)`;
    const entries = await Promise.all(
      Array.from({ length: 4 }, () => execFileAsync(process.execPath, ['--input-type=module', '-e', script]).then((r) => r.stdout.trim())),
    );
    expect(new Set(entries).size).toBe(1);
    expect(run(entries[0]!)).toBe('three');
    expect(readdirSync(join(project, 'dist')).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });
});
