import http from 'node:http';
import https from 'node:https';

/**
 * Outbound connections kept open between requests to the same host (webhook receivers, Slack), shared by every
 * client that posts out. An idle connection closes after 4 s, before most servers' own keep-alive timeout (Node's
 * is 5 s), so a reused one is rarely one the server is closing; `droppedOnReuse` says when it was anyway.
 */
const IDLE_MS = 4_000;

export type KeptAliveAgents = Record<'http:' | 'https:', http.Agent>;

export function keptAliveAgents(opts: Pick<http.AgentOptions, 'maxSockets' | 'maxFreeSockets' | 'scheduling'> = {}): KeptAliveAgents {
  const options = { ...opts, keepAlive: true, timeout: IDLE_MS };
  return { 'http:': new http.Agent(options), 'https:': new https.Agent(options) };
}

/** The agent for a URL's protocol, or undefined for one neither speaks. */
export const agentFor = (agents: KeptAliveAgents, url: URL): http.Agent | undefined => agents[url.protocol as keyof KeptAliveAgents];

/**
 * The server closed a kept-alive connection as this request reused it, before any answer: nothing was read, so
 * the request may go again on a new connection (at worst a second copy, as any retry).
 */
export const droppedOnReuse = (req: http.ClientRequest, answered: boolean, e: NodeJS.ErrnoException): boolean =>
  req.reusedSocket && !answered && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
