import { CloudAdapter, ConfigurationBotFrameworkAuthentication, type ConfigurationBotFrameworkAuthenticationOptions } from 'botbuilder';
import type { Config } from '../../config.ts';

/**
 * The inbound side of Bot Framework auth. With MICROSOFT_APP_ID set, botbuilder validates every activity's
 * JWT (issuer, audience = our app id, signing keys from the Bot Framework's OpenID metadata) and the adapter
 * answers 401 to anything unauthenticated. Without an app id and with TEAMS_EMULATOR=1 (refused in
 * production by the config schema) authentication is disabled so the local emulator can talk to the bot.
 */
export function createCloudAdapter(config: Config): CloudAdapter {
  if (!config.MICROSOFT_APP_ID && !config.TEAMS_EMULATOR) {
    throw new Error('Teams needs MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD, or TEAMS_EMULATOR=1 for local emulator traffic');
  }
  const options: ConfigurationBotFrameworkAuthenticationOptions = config.MICROSOFT_APP_ID
    ? {
        MicrosoftAppId: config.MICROSOFT_APP_ID,
        MicrosoftAppPassword: config.MICROSOFT_APP_PASSWORD,
        MicrosoftAppType: config.MICROSOFT_APP_TYPE,
        MicrosoftAppTenantId: config.MICROSOFT_APP_TENANT_ID,
      }
    : {};
  return new CloudAdapter(new ConfigurationBotFrameworkAuthentication(options));
}

export const authenticationEnabled = (config: Config) => Boolean(config.MICROSOFT_APP_ID);
