import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';

/** A local HTTP server per test, closed after each one; `listen` starts it and gives its URL for `path`. */
export function useLocalServer(): (handler: http.RequestListener, path: string) => Promise<string> {
  let server: http.Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });
  return async (handler, path) => {
    server = http.createServer(handler);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  };
}

/**
 * A server that answers the first request on each connection and drops the connection at the second, unanswered:
 * a kept-alive connection closed by the server just as the client reuses it. `answered` counts the answers.
 */
export function dropsReusedConnections(answer: (res: http.ServerResponse) => void) {
  const served = new WeakMap<object, number>();
  const counts = { answered: 0, dropped: 0 };
  const handler: http.RequestListener = (req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    if (n > 1) {
      counts.dropped++;
      req.socket.destroy();
      return;
    }
    req.resume().on('end', () => {
      counts.answered++;
      answer(res);
    });
  };
  return { handler, counts };
}
