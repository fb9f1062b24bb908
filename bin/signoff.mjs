#!/usr/bin/env node
// Runs the bundle of the TypeScript sources (bin/bundle.mjs builds it when a source changed): no build step to
// remember between `npm install` and `npm start`. Where it cannot be built, the sources run through tsx's loader.
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundleEntry } from './bundle.mjs';

let entry;
try {
  entry = await bundleEntry(dirname(dirname(fileURLToPath(import.meta.url))));
} catch (e) {
  process.stderr.write(`signoff: running the sources through tsx (the bundle could not be built: ${e.message})\n`);
}
if (entry) await import(pathToFileURL(entry).href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
