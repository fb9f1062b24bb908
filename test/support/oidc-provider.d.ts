// The slice of oidc-provider the browser tests use (the package ships no types).
declare module 'oidc-provider' {
  export default class Provider {
    constructor(
      issuer: string,
      configuration: Record<string, unknown> & {
        findAccount?: (
          ctx: unknown,
          id: string,
        ) =>
          | { accountId: string; claims: () => Record<string, unknown> }
          | Promise<{ accountId: string; claims: () => Record<string, unknown> }>;
      },
    );
    listen(port: number): import('node:http').Server;
  }
}
