import { InitialSchema1763780000000 } from './1763780000000-initial-schema.ts';
import { BackgroundWork1763790000000 } from './1763790000000-background-work.ts';
import { AccessReviewDetails1763800000000 } from './1763800000000-access-review-details.ts';
import { TeamsUserIds1763810000000 } from './1763810000000-teams-user-ids.ts';
import { AttemptRollup1763820000000 } from './1763820000000-attempt-rollup.ts';
import { ReviewReminders1763830000000 } from './1763830000000-review-reminders.ts';
import { ChangeVersions1763860000000 } from './1763860000000-change-versions.ts';
import { DeviceManagerConnectors1763880000000 } from './1763880000000-device-manager-connectors.ts';
import { AuditSealing1763900000000 } from './1763900000000-audit-sealing.ts';
import { CaseInsensitiveResources1763910000000 } from './1763910000000-case-insensitive-resources.ts';
import { LinkTokenVersions1763910000001 } from './1763910000001-link-token-versions.ts';
import { WebApp1763930000000 } from './1763930000000-web-app.ts';
import { MessageDeliveries1763940000000 } from './1763940000000-message-deliveries.ts';
import { DecisionOrder1763960000000 } from './1763960000000-decision-order.ts';
import { DeferredWakeups1763970000000 } from './1763970000000-deferred-wakeups.ts';
import { DeliveryLeases1763950000000 } from './1763950000000-delivery-leases.ts';
import { ReminderTimers1763980000000 } from './1763980000000-reminder-timers.ts';
import { OutboxIndexes1763990000000 } from './1763990000000-outbox-indexes.ts';
import { ApiKeyChanges1764000000000 } from './1764000000000-api-key-changes.ts';
import { DecisionIndexes1764010000000 } from './1764010000000-decision-indexes.ts';

/** Every migration, in order. Listed explicitly so the ESM runtime needs no glob loading. */
export const migrations = [
  InitialSchema1763780000000,
  BackgroundWork1763790000000,
  AccessReviewDetails1763800000000,
  TeamsUserIds1763810000000,
  AttemptRollup1763820000000,
  ReviewReminders1763830000000,
  ChangeVersions1763860000000,
  DeviceManagerConnectors1763880000000,
  AuditSealing1763900000000,
  CaseInsensitiveResources1763910000000,
  LinkTokenVersions1763910000001,
  WebApp1763930000000,
  MessageDeliveries1763940000000,
  DeliveryLeases1763950000000,
  DecisionOrder1763960000000,
  DeferredWakeups1763970000000,
  ReminderTimers1763980000000,
  OutboxIndexes1763990000000,
  ApiKeyChanges1764000000000,
  DecisionIndexes1764010000000,
];
