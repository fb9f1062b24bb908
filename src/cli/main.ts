import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config.ts';
import { activeKeysNamed, apiScopes, issueApiKey, listApiKeys, revokeApiKey } from '../core/api-keys.ts';
import { cliActor } from '../core/catalog-service.ts';
import { utcMinute } from '../core/clock.ts';
import { applicationByIdOrName, requireIdentity } from '../core/directory.ts';
import { parseDuration } from '../core/durations.ts';
import { AppError } from '../core/errors.ts';
import { createSigninLink } from '../core/signin-links.ts';
import { requestStatuses, type RequestStatus } from '../core/request-state.ts';
import { appliedMigrations, type MigrationReport, openDatabase, redactUrl } from '../db/database.ts';
import { applyCatalogFile, formatSummary } from '../integrations/catalog-yaml.ts';
import { tuneServerHeap } from '../process-tuning.ts';
import { registerAuditCommands } from './audit-commands.ts';
import { registerChangeCommands, registerRequestDecisionCommands } from './decision-commands.ts';
import { out, positiveInt, reportError, runCommand, table, withContext, withDatabase } from './run.ts';

const program = new Command('signoff')
  .description('Signoff: chat-ops approval service for IT (admin CLI)')
  .showHelpAfterError()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  .addHelpText(
    'after',
    `
Commands in full:
  signoff migrate
  signoff start [--role web|worker|all]
  signoff apply <file> [--prune] [--dry-run]
  signoff apikey create --name NAME --scopes SCOPE[,SCOPE] [--identity USER]   (scopes: ${apiScopes.join(', ')})
  signoff requests list [--status S] [--user U] [--app A] [--device GUID] [--limit N] [--json]
  signoff requests approve|deny|revoke|reapprove ID --as USER [--reason TEXT] [--if-version N]
  signoff changes list [--status S] [--json]
  signoff changes approve|reject ID --as USER [--notes TEXT] [--if-version N]
  signoff audit verify [--checkpoint FILE]
  signoff audit checkpoint | keygen
  signoff signin-link --user USER
  signoff webhook-receiver --secret whsec_... [--port 4000]

Configuration comes from environment variables (DATABASE_URL, REDIS_URL, PORT, ...).`,
  );

program
  .command('migrate')
  .description('create the database if missing and apply pending migrations')
  .action(() =>
    runCommand(async () => {
      const config = loadConfig();
      let report: MigrationReport = { created: false, applied: [] };
      const db = await openDatabase(config.DATABASE_URL, {
        migrate: true,
        poolSize: 2,
        connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
        report: (r) => {
          report = r;
        },
      });
      const rows = await appliedMigrations(db);
      await db.close();
      const plural = (n: number) => `${n} migration${n === 1 ? '' : 's'}`;
      const did = [report.created ? 'created' : '', report.applied.length ? `applied ${plural(report.applied.length)} to` : ''].filter(
        Boolean,
      );
      out.line(
        `${did.length ? `${did.join(', ')} database` : 'database'} ${redactUrl(config.DATABASE_URL)}; it is up to date (${plural(rows.length)}, latest ${rows.at(-1)?.name ?? 'none'})`,
      );
    }),
  );

program
  .command('start')
  .description('migrate, then run the web server, the workers, or both in this process')
  .addOption(new Option('--role <role>', 'what this process runs').choices(['web', 'worker', 'all']).default('all'))
  .action(async (opts: { role: 'web' | 'worker' | 'all' }) => {
    try {
      // before the server's modules load: a collection while they do sets the next limit with the setting it finds
      tuneServerHeap();
      // loaded on demand: the runtime pulls in the chat SDKs, which no other command needs
      const { runSignoff } = await import('../runtime.ts');
      await runSignoff({ role: opts.role });
    } catch (e) {
      process.exit(reportError(e));
    }
  });

program
  .command('apply')
  .description('make the catalog match a YAML file (idempotent; see docs/catalog-yaml.md)')
  .argument('<file>', 'the catalog YAML file')
  .option('--prune', 'delete objects of the sections in the file that the file does not name', false)
  .option('--dry-run', 'report what would change without writing anything', false)
  .action((file: string, opts: { prune: boolean; dryRun: boolean }) =>
    runCommand(() =>
      withContext(async (ctx) => {
        const summary = await applyCatalogFile(ctx.catalog, file, { prune: opts.prune, dryRun: opts.dryRun });
        out.line(formatSummary(summary));
      }),
    ),
  );

const apikey = program.command('apikey').description('manage API keys for the REST API');
apikey
  .command('create')
  .description('create an API key; the key is printed once, alone on the last line')
  .requiredOption('--name <name>', 'who or what uses the key, e.g. cm-connector')
  .requiredOption('--scopes <scopes>', `comma-separated: ${apiScopes.join(', ')}`)
  .option('--identity <username>', 'directory identity the key acts as (e.g. for change requests)')
  .action((opts: { name: string; scopes: string; identity?: string }) =>
    runCommand(() =>
      withDatabase(async (db) => {
        const scopes = opts.scopes
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const identity = opts.identity ? await requireIdentity(db, { username: opts.identity }, 'identity') : undefined;
        const { id, key } = await issueApiKey(db, cliActor, new Date(), { name: opts.name, scopes, identityId: identity?.id ?? null });
        const sameName = await activeKeysNamed(db, opts.name.trim());
        out.line(
          `Created API key "${opts.name.trim()}" (id ${id}) with scopes ${[...new Set(scopes)].join(', ')}${identity ? ` acting as ${identity.username}` : ''}.`,
        );
        if (sameName > 1)
          out.line(`Note: ${sameName} active keys are now named "${opts.name.trim()}"; the audit log tells them apart by id.`);
        out.line('Store it now; it cannot be shown again:');
        out.line(key);
      }),
    ),
  );

apikey
  .command('list')
  .description('list API keys (name, prefix, scopes, identity, last use); never the keys themselves')
  .option('--all', 'include revoked keys')
  .action((opts: { all?: boolean }) =>
    runCommand(() =>
      withDatabase(async (db) => {
        const keys = await listApiKeys(db, Boolean(opts.all));
        if (keys.length === 0) {
          out.line('no API keys');
          return;
        }
        const when = (d: Date | null) => (d ? utcMinute(d) : '-');
        out.line(
          table(
            ['ID', 'PREFIX', 'NAME', 'SCOPES', 'IDENTITY', 'CREATED', 'LAST USED', 'REVOKED'],
            keys.map((k) => [
              k.id,
              k.prefix,
              k.name,
              k.scopes.join(','),
              k.identity ?? '-',
              when(k.created_at),
              when(k.last_used_at),
              when(k.revoked_at),
            ]),
          ),
        );
      }),
    ),
  );
apikey
  .command('revoke <key>')
  .description('revoke an API key by id, sk_… prefix or unique name; it stops working at once')
  .action((ref: string) =>
    runCommand(() =>
      withDatabase(async (db) => {
        const k = await revokeApiKey(db, cliActor, new Date(), ref);
        out.line(`Revoked API key "${k.name}" (${k.prefix}, id ${k.id}).`);
      }),
    ),
  );

const requests = program.command('requests').description('inspect and decide software requests');
registerRequestDecisionCommands(requests);
registerChangeCommands(program);
requests
  .command('list')
  .description('list requests, newest first')
  .addOption(new Option('--status <status>', 'only this status').choices([...requestStatuses]))
  .option('--user <username>', 'only requests of this user (DOMAIN\\user or UPN)')
  .option('--app <app>', 'only this application (model id or name)')
  .option('--device <clientGuid>', 'only this device')
  .option('--limit <n>', 'at most this many (1-200)', positiveInt(200), 50)
  .option('--cursor <cursor>', 'continue after a previous page')
  .option('--json', 'print JSON instead of a table', false)
  .action((opts: { status?: RequestStatus; user?: string; app?: string; device?: string; limit: number; cursor?: string; json: boolean }) =>
    runCommand(() =>
      withContext(async (ctx) => {
        let applicationId: string | undefined;
        if (opts.app) {
          const app = await applicationByIdOrName(ctx.db, opts.app);
          if (!app) throw new AppError('not_found', `No application "${opts.app}" is in the catalog.`);
          applicationId = app.id;
        }
        const page = await ctx.requests.list(
          { status: opts.status, username: opts.user, applicationId, clientGuid: opts.device },
          opts.limit,
          opts.cursor,
        );
        if (opts.json) {
          out.line(JSON.stringify(page, null, 2));
          return;
        }
        if (page.items.length === 0) {
          out.line('no requests match');
          return;
        }
        out.line(
          table(
            ['ID', 'STATUS', 'APPLICATION', 'REQUESTER', 'DEVICE', 'CREATED', 'DECIDED BY'],
            page.items.map((r) => [
              r.id,
              r.status,
              r.application.name,
              r.requester?.username ?? '-',
              r.device?.name ?? '-',
              r.createdAt,
              r.decidedBy ?? '-',
            ]),
          ),
        );
        if (page.nextCursor) out.line(`more: --cursor ${page.nextCursor}`);
      }),
    ),
  );

program
  .command('signin-link')
  .description('print a one-time URL that signs a person in to the web app (/app); it works once, for SIGNIN_LINK_TTL')
  .requiredOption('--user <username>', 'the directory identity to sign in (DOMAIN\\user or UPN)')
  .action((opts: { user: string }) =>
    runCommand(() =>
      withContext(async (ctx) => {
        const who = await requireIdentity(ctx.db, { username: opts.user }, 'user');
        const { token, expiresAt } = await createSigninLink(ctx.db, cliActor, who, new Date(), parseDuration(ctx.config.SIGNIN_LINK_TTL));
        out.line(`One-time sign-in link for ${who.display_name} (${who.username}), valid until ${expiresAt.toISOString()}:`);
        out.line(`${ctx.config.PUBLIC_URL.replace(/\/$/, '')}/app/signin/link/${token}`);
      }),
    ),
  );

program
  .command('webhook-receiver')
  .description('run a local receiver that verifies and prints signed webhooks (for trying Signoff out)')
  .requiredOption('--secret <whsec>', "the endpoint's signing secret (whsec_...)")
  .option(
    '--port <port>',
    'port to listen on',
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number');
      return n;
    },
    4000,
  )
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .action((opts: { secret: string; port: number; host: string }) =>
    runCommand(async () => {
      if (!/^whsec_[A-Za-z0-9+/=]{16,}$/.test(opts.secret))
        throw new AppError('validation_failed', "--secret must be the endpoint's whsec_... signing secret.");
      const { runWebhookReceiver } = await import('./webhook-receiver.ts');
      await runWebhookReceiver(opts);
    }),
  );

registerAuditCommands(program);

await program.parseAsync(process.argv);
