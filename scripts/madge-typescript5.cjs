// Preloaded by `npm run circular`. madge parses TypeScript with typescript-estree, which needs TypeScript's
// JavaScript API (TypeScript 5); this project compiles with TypeScript 7, which has none. Requests for
// `typescript` from inside node_modules (madge's parser stack) get the `typescript5` alias instead.
const Module = require('node:module');
const path = require('node:path');

const typescript5 = require.resolve('typescript5');
// the real path: node_modules may be a symlink (a git worktree sharing another checkout's)
const fs = require('node:fs');
const dependencies = fs.realpathSync(path.join(__dirname, '..', 'node_modules')) + path.sep;
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (request === 'typescript' && parent?.filename?.startsWith(dependencies)) return typescript5;
  return resolve.call(this, request, parent, ...rest);
};
