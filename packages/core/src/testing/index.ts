// Fault injection
export type {
  FaultDirection,
  FaultLinkEvents,
  FaultLinkState,
  FaultOptions,
  FaultProxyEvents,
  FaultProxyOptions,
  FaultProxyStats,
  FaultProxyTarget,
  PauseOptions,
  ThrottleOptions,
} from './fault-proxy.js';
export {
  createFaultProxy,
  DEFAULT_FAULT_PROXY_HIGH_WATER_MARK,
  DEFAULT_FAULT_PROXY_HOST,
  DEFAULT_THROTTLE_BURST_MS,
  FaultLink,
  FaultProxy,
} from './fault-proxy.js';
