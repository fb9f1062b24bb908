/** Placeholder until the runtime lands: starts web and/or workers for `signoff start`. */
export type Role = 'web' | 'worker' | 'all';

export async function runSignoff(_opts: { role: Role }): Promise<void> {
  throw new Error('runtime not wired yet');
}
