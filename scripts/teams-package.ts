/** `npm run teams:package`: writes build/signoff-teams.zip for upload to Teams (see docs/teams-setup.md). */
import { buildTeamsPackage } from './teams-package-lib.ts';

try {
  const { path, warnings } = buildTeamsPackage();
  for (const w of warnings) console.warn(`warning: ${w}`);
  console.log(`Teams app package written to ${path}`);
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
