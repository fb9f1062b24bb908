/**
 * For `npm run teams:package` (scripts/teams-package.ts): builds build/signoff-teams.zip (manifest + icons) ready to upload to Teams.
 * The icons are drawn here (no downloads): a white check mark on the accent colour (192x192) and a white,
 * transparent outline (32x32), as the Teams store requires. Zip and PNG are written with node:zlib alone.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { deflateRawSync, deflateSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
export function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** RGBA pixels (row-major) to a PNG file. */
export function encodePng(width: number, height: number, rgba: Buffer): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.writeUInt8(8, 8); // bit depth
  ihdr.writeUInt8(6, 9); // RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function distToSegment(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax,
    dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

/** A check mark (in unit coordinates) with anti-aliased edges; background colour or transparent. */
export function drawIcon(size: number, background: [number, number, number] | null): Buffer {
  const px = Buffer.alloc(size * size * 4);
  const stroke = size * 0.09;
  const pts = [
    [0.27, 0.52],
    [0.43, 0.68],
    [0.74, 0.34],
  ].map(([x, y]) => [x! * size, y! * size] as const);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const cx = x + 0.5,
        cy = y + 0.5;
      const d = Math.min(distToSegment(cx, cy, ...pts[0]!, ...pts[1]!), distToSegment(cx, cy, ...pts[1]!, ...pts[2]!));
      const ink = Math.max(0, Math.min(1, stroke - d + 0.5));
      const i = (y * size + x) * 4;
      if (background) {
        const [r, g, b] = background;
        px[i] = Math.round(r + (255 - r) * ink);
        px[i + 1] = Math.round(g + (255 - g) * ink);
        px[i + 2] = Math.round(b + (255 - b) * ink);
        px[i + 3] = 255;
      } else {
        px.fill(255, i, i + 3);
        px[i + 3] = Math.round(255 * ink);
      }
    }
  }
  return encodePng(size, size, px);
}

/** A minimal zip (deflate, no data descriptors), enough for a Teams app package. */
export function zip(files: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const packed = deflateRawSync(f.data);
    const crc = crc32(f.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01: reproducible builds
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(f.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, packed);
    centrals.push(central, name);
    offset += local.length + name.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The manifest with the bot's app id and public URL filled in; explains what is missing instead of writing a package Teams rejects. */
export function renderManifest(template: string, env: Record<string, string | undefined>): { manifest: string; warnings: string[] } {
  const appId = env.MICROSOFT_APP_ID?.trim();
  if (!appId || !GUID.test(appId)) {
    throw new Error(
      "MICROSOFT_APP_ID must be set to the bot's Microsoft app id (a GUID from the Azure Bot registration) to build the Teams package.",
    );
  }
  const publicUrl = new URL(env.PUBLIC_URL?.trim() || 'http://localhost:3978');
  const warnings =
    publicUrl.protocol === 'https:'
      ? []
      : [`PUBLIC_URL ${publicUrl.origin} is not https; Teams requires https URLs in the manifest for store or org-wide upload.`];
  const manifest = template
    .replaceAll('${{MICROSOFT_APP_ID}}', appId)
    .replaceAll('${{PUBLIC_URL}}', publicUrl.origin)
    .replaceAll('${{PUBLIC_HOST}}', publicUrl.host);
  JSON.parse(manifest);
  return { manifest, warnings };
}

export function buildTeamsPackage(
  env: Record<string, string | undefined> = process.env,
  outDir = `${root}build`,
): { path: string; warnings: string[] } {
  const color = drawIcon(192, [0x2b, 0x57, 0x97]);
  const outline = drawIcon(32, null);
  // the drawn icons are kept in the repo too, so the package contents can be reviewed
  writeFileSync(`${root}teams/color.png`, color);
  writeFileSync(`${root}teams/outline.png`, outline);
  const { manifest, warnings } = renderManifest(readFileSync(`${root}teams/manifest.json`, 'utf8'), env);
  mkdirSync(outDir, { recursive: true });
  const path = `${outDir}/signoff-teams.zip`;
  writeFileSync(
    path,
    zip([
      { name: 'manifest.json', data: Buffer.from(manifest) },
      { name: 'color.png', data: color },
      { name: 'outline.png', data: outline },
    ]),
  );
  return { path, warnings };
}
