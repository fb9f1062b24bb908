import v8 from 'node:v8';

/**
 * How far V8 lets the heap grow between major collections in a long-running Signoff process. By default the old
 * generation may reach about 4× the live heap first: under `npm run bench -- decide-http` a live heap of about 50 MB
 * peaked at 350 MB RSS. Growing by half as much again keeps it near 210 MB at the same decision rate (GC is a few
 * percent of the time either way). A `--heap-growing-percent` given in NODE_OPTIONS or on the command line wins.
 * Call it before the server's modules load: the limit a major collection sets holds until the next one, and one
 * that ran while `start` loaded the runtime, before this, let a live heap of 60 MB reach 230 MB first.
 */
export function tuneServerHeap(): void {
  const given = `${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`;
  if (/heap[-_]growing[-_]percent/.test(given)) return;
  v8.setFlagsFromString('--heap-growing-percent=50');
}

/**
 * What `npm start` gives Node on its command line (package.json; a test keeps the two the same), for what can only
 * be set when Node starts. A young generation of 32 MB semi-spaces instead of 16: most of what a request allocates
 * dies young, and with the default more of a decision's objects outlived two scavenges and were promoted. Four
 * alternating pairs of decide-http runs: 3–12% less server CPU per decision, in the scenario's process and in
 * `signoff start --role web`, for about 30 MB more at peak (the web process 223–233 MB against 191–197).
 */
export const SERVER_NODE_OPTIONS = ['--max-semi-space-size=32'];
