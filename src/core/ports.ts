import type { DomainEvent } from './events.ts';

/**
 * What the core needs from outside. Adapters (Slack, Teams, SMTP, webhooks) implement these; the core
 * never calls them inside a transaction: it writes outbox rows and the relay calls the ports afterwards.
 */
export interface ChatNotifier {
  readonly platform: 'slack' | 'teams' | 'email';
  /** Renders and posts/updates whatever this event means on the platform. Must be idempotent per event id. */
  handle(event: DomainEvent): Promise<void>;
}

/** Intune and Configuration Manager connectors; see device-manager.ts (the generic webhook needs no port). */
export type { DeviceManager, DeviceManagerCheck } from './device-manager.ts';

/** Outbound URL check supplied by the integrations layer (private/loopback/metadata addresses refused). */
export type UrlGuard = (url: string) => Promise<void>;

export interface MailMessage {
  to: string[];
  subject: string;
  text: string;
  html?: string;
  /** the Message-ID header, as recorded in the message store */
  messageId?: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
}
