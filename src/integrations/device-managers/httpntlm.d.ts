// httpntlm ships no types; these are the three message functions of its NTLM module that the AdminService client uses.
declare module 'httpntlm/ntlm.js' {
  interface NtlmOptions {
    username: string;
    password: string;
    domain: string;
    workstation: string;
  }
  interface Type2Message {
    serverChallenge: Buffer;
    negotiateFlags: number;
    targetInfo?: Buffer;
  }
  /** `NTLM <base64>` */
  export function createType1Message(options: Partial<NtlmOptions>): string;
  export function parseType2Message(header: string, callback: (e: Error) => void): Type2Message | null;
  /** `NTLM <base64>`; NTLMv2 when the server offers target info */
  export function createType3Message(type2: Type2Message, options: NtlmOptions): string;
}
