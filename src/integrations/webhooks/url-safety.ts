import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import type { Config } from '../../config.ts';
import type { UrlGuard } from '../../core/ports.ts';
import { AppError } from '../../core/errors.ts';

/** Addresses a webhook must never reach: they point back into our own network or at cloud metadata. */
const blocked = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // unspecified / "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, includes 169.254.169.254 metadata
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // ULA, includes fd00:ec2::254 metadata
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, bits, 'ipv6');

/** ::ffff:10.0.0.1 and friends are IPv4 in disguise; judge them as IPv4. */
function normalize(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1]!, family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

export interface AllowList {
  hosts: Set<string>;
  nets: BlockList;
}

export function parseAllowList(entries: string[]): AllowList {
  const hosts = new Set<string>();
  const nets = new BlockList();
  for (const raw of entries) {
    const entry = raw
      .trim()
      .toLowerCase()
      .replace(/^\[|\]$/g, '');
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
    if (cidr && isIP(cidr[1]!)) {
      const n = normalize(cidr[1]!);
      nets.addSubnet(n.address, Number(cidr[2]), n.family);
    } else if (isIP(entry)) {
      const n = normalize(entry);
      nets.addAddress(n.address, n.family);
      hosts.add(entry);
    } else if (entry) {
      hosts.add(entry);
    }
  }
  return { hosts, nets };
}

/** Why an address is refused, or null when it may be reached. */
export function addressRefusal(address: string, allow: AllowList): string | null {
  const n = normalize(address);
  if (allow.nets.check(n.address, n.family)) return null;
  if (!blocked.check(n.address, n.family)) return null;
  if (n.address === '169.254.169.254' || /^fd00:ec2::254$/i.test(n.address)) return `${address} is a cloud metadata address`;
  return `${address} is a loopback, private, link-local or otherwise internal address`;
}

export type UrlAssessment =
  | { ok: true; url: URL; host: string; allowedByName: boolean }
  | { ok: false; kind: 'refused' | 'unresolvable'; reason: string };

/** Parses, resolves and judges a URL; DNS failures are told apart from refusals so a sender can retry them. */
export async function assessOutboundUrl(raw: string, allowHosts: string[] | AllowList): Promise<UrlAssessment> {
  const allow = Array.isArray(allowHosts) ? parseAllowList(allowHosts) : allowHosts;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, kind: 'refused', reason: `"${raw}" is not a valid URL` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return { ok: false, kind: 'refused', reason: `only http and https URLs are allowed, not ${url.protocol}` };
  if (url.username || url.password) return { ok: false, kind: 'refused', reason: 'URLs with credentials are not allowed' };
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (allow.hosts.has(host)) return { ok: true, url, host, allowedByName: true };
  let addresses: string[];
  if (isIP(host)) {
    addresses = [host];
  } else {
    try {
      addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch (e) {
      return {
        ok: false,
        kind: 'unresolvable',
        reason: `${host} could not be resolved (${(e as NodeJS.ErrnoException).code ?? 'DNS error'})`,
      };
    }
  }
  // every address must pass: a name resolving to one public and one private address is still a way in
  for (const a of addresses) {
    const refusal = addressRefusal(a, allow);
    // an IP literal needs no "resolves to"
    if (refusal) return { ok: false, kind: 'refused', reason: isIP(host) ? refusal : `${host} resolves to ${refusal}` };
  }
  return { ok: true, url, host, allowedByName: false };
}

/**
 * Throws `unsafe_url` unless the URL may be called; used when an endpoint is saved. A name that does not resolve
 * yet (DNS not set up, a split-horizon name) is accepted here: every send resolves and checks it again.
 */
export async function checkOutboundUrl(raw: string, allowHosts: string[]): Promise<void> {
  const r = await assessOutboundUrl(raw, allowHosts);
  if (!r.ok && r.kind !== 'unresolvable') {
    throw new AppError(
      'unsafe_url',
      `The URL is not allowed: ${r.reason}. List the host or its network in WEBHOOK_ALLOW_HOSTS to allow it.`,
      { field: 'url', reason: r.reason },
    );
  }
}

export function createUrlGuard(config: Pick<Config, 'WEBHOOK_ALLOW_HOSTS'>): UrlGuard {
  const allow = config.WEBHOOK_ALLOW_HOSTS;
  return (url) => checkOutboundUrl(url, allow);
}
