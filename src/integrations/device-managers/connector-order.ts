// The order and connector shapes are the core's port (src/core/device-manager.ts); these names are what the integrations use.
export type {
  DeviceManager as DeviceManagerConnector,
  DeviceManagerOrder as ConnectorOrder,
  OrderOperation,
} from '../../core/device-manager.ts';
