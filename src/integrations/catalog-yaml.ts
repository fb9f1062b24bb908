import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import type { ApplyOptions, ApplySummary, CatalogService } from '../core/catalog-service.ts';
import { catalogDocumentSchema, catalogKinds, type CatalogDocument } from '../core/catalog-schemas.ts';
import { AppError } from '../core/errors.ts';

/** Reads `signoff apply` files. Every problem is reported as `file:line:column: path: message`. */

interface Located {
  field: string;
  message: string;
  line?: number;
  col?: number;
}

class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** The position of the deepest node on the path that exists (a missing field points at its parent). */
  at(path: (string | number)[], key?: string): { line: number; col: number } | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as
        | { range?: [number, number, number]; items?: { key: { value?: unknown; range?: [number, number, number] } }[] }
        | undefined;
      if (!node?.range) continue;
      if (key && n === path.length && isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown })?.value === key);
        const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
        if (range) return this.lines.linePos(range[0]);
      }
      return this.lines.linePos(node.range[0]);
    }
    return undefined;
  }
}

const toPath = (field: string) =>
  field
    .split('.')
    .filter(Boolean)
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));

function render(source: string, problems: Located[]): string {
  const lines = problems.map((p) => `${source}${p.line ? `:${p.line}:${p.col}` : ''}: ${p.field}: ${p.message}`);
  return lines.length === 1 ? lines[0]! : `${source} has ${lines.length} problems:\n  ${lines.join('\n  ')}`;
}

function zodLocated(error: z.ZodError, locator: Locator): Located[] {
  return error.issues.map((issue) => {
    const path = issue.path.map((p) => (typeof p === 'number' ? p : String(p)));
    const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : undefined;
    const pos = locator.at(path, unknownKeys?.[0]);
    const field = path.join('.') || '(document)';
    const message = unknownKeys
      ? `unknown field${unknownKeys.length > 1 ? 's' : ''} ${unknownKeys.map((k) => `"${k}"`).join(', ')}`
      : issue.message;
    return { field, message, line: pos?.line, col: pos?.col };
  });
}

export interface ParsedCatalog {
  document: CatalogDocument;
  /** maps a problem found later (e.g. a missing group while applying) back to a line of the file */
  locate(field: string): { line: number; col: number } | undefined;
}

/** Parses and validates YAML text; nothing is written. */
export function parseCatalogYaml(text: string, source = 'catalog'): ParsedCatalog {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    // after the first syntax error the parser's further complaints are mostly echoes of it
    const problems = doc.errors.slice(0, 1).map((e) => ({
      field: 'yaml',
      message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
      line: e.linePos?.[0].line,
      col: e.linePos?.[0].col,
    }));
    throw new AppError('validation_failed', render(source, problems), { errors: problems });
  }
  const locator = new Locator(doc, lines);
  const raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw) || isSeq(doc.contents)) {
    const problem = { field: '(document)', message: `must be a mapping with sections such as ${catalogKinds.join(', ')}`, line: 1, col: 1 };
    throw new AppError('validation_failed', render(source, [problem]), { errors: [problem] });
  }
  const result = catalogDocumentSchema.safeParse(raw);
  if (!result.success) {
    const problems = zodLocated(result.error, locator);
    throw new AppError('validation_failed', render(source, problems), { errors: problems });
  }
  return { document: result.data, locate: (field) => locator.at(toPath(field)) };
}

/** Reads, validates and applies a catalog file; errors found while applying also name their line. */
export async function applyCatalogFile(catalog: CatalogService, file: string, opts: ApplyOptions = {}): Promise<ApplySummary> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new AppError('not_found', `Cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  const source = basename(file);
  const parsed = parseCatalogYaml(text, source);
  try {
    return await catalog.applyDocument(parsed.document, opts);
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    const errors = e.details?.errors as { field: string; message: string }[] | undefined;
    const path = e.details?.path as (string | number)[] | undefined;
    const field = errors?.[0]?.field ?? path?.join('.');
    const pos = field ? parsed.locate(field) : undefined;
    if (!pos) throw e;
    throw new AppError(e.code, `${source}:${pos.line}:${pos.col}: ${e.message}`, e.details);
  }
}

/** A small table: one line per kind with created/updated/unchanged/deleted counts. */
export function formatSummary(summary: ApplySummary): string {
  const header = ['kind', 'created', 'updated', 'unchanged', 'deleted'];
  const rows = catalogKinds.map((k) => [k, ...(['created', 'updated', 'unchanged', 'deleted'] as const).map((c) => String(summary[k][c]))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const total = catalogKinds.reduce((n, k) => n + summary[k].created + summary[k].updated + summary[k].deleted, 0);
  const tail = summary.dryRun
    ? `dry run: ${total} change${total === 1 ? '' : 's'} would be made; nothing was written`
    : total === 0
      ? 'no changes'
      : `${total} change${total === 1 ? '' : 's'} applied`;
  return [line(header), ...rows.map(line), tail].join('\n');
}
