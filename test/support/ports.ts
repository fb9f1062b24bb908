import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A port free on 127.0.0.1 right now, for a server started as another process (which picks no port of its own). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
