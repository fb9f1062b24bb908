import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The CLI and the server run from a bundle of src/ and migrations/ (esbuild; packages stay in node_modules), built
 * again when a source changes: nothing is transpiled at start and no loader thread runs (tsx's held about 35 MB of
 * every process, and `signoff start --role web` idled at 222–227 MB through tsx against 162–165 MB bundled).
 * Each build goes to a directory of its own, named by its inputs, and `dist/current` names it: a process that
 * started from one build loads its later chunks (the server's, on `start`) from that same build.
 */
const INPUTS = ['src', 'migrations'];
// part of the stamp: a change to how it is built makes every bundle stale
const OPTIONS = { bundle: true, splitting: true, platform: 'node', format: 'esm', packages: 'external', target: 'node20' };

function inputsStamp(root) {
  let newest = 0;
  let count = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        count++;
        newest = Math.max(newest, statSync(p).mtimeMs);
      }
    }
  };
  for (const d of INPUTS) walk(join(root, d));
  for (const f of ['tsconfig.json', 'package.json', 'bin/bundle.mjs']) newest = Math.max(newest, statSync(join(root, f)).mtimeMs);
  return createHash('sha256').update(JSON.stringify({ count, newest, OPTIONS })).digest('hex').slice(0, 16);
}

/** The bundle's entry for the sources as they are now, built first when there is none. */
export async function bundleEntry(root) {
  const dist = join(root, 'dist');
  const stamp = inputsStamp(root);
  const dir = join(dist, `build-${stamp}`);
  const entry = join(dir, 'main.js');
  try {
    if (readFileSync(join(dist, 'current'), 'utf8') === stamp && existsSync(entry)) return entry;
  } catch {}
  const esbuild = await import('esbuild');
  // a build of its own, renamed into place whole: processes starting meanwhile never see half of one
  const tmp = join(dist, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp, { recursive: true });
  try {
    await esbuild.build({ ...OPTIONS, entryPoints: { main: join(root, 'src/cli/main.ts') }, outdir: tmp, logLevel: 'silent' });
  } finally {
    await esbuild.stop();
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // another process built the same sources first
    rmSync(tmp, { recursive: true, force: true });
  }
  const current = join(dist, `.current-${process.pid}-${randomBytes(4).toString('hex')}`);
  writeFileSync(current, stamp);
  renameSync(current, join(dist, 'current'));
  removeOldBuilds(dist, stamp);
  return entry;
}

// builds of other sources a day old or more: no process still starting could be loading from them
function removeOldBuilds(dist, keep) {
  const dayAgo = Date.now() - 86_400_000;
  for (const e of readdirSync(dist, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name === `build-${keep}` || !/^(build-|\.tmp-)/.test(e.name)) continue;
    const p = join(dist, e.name);
    if (statSync(p).mtimeMs < dayAgo) rmSync(p, { recursive: true, force: true });
  }
}
