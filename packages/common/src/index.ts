// @nexus-proxy/common: one home for the mechanisms that the node (@nexus-proxy/core) and the backend
// client (@nexus-proxy/backend-client) both need at run time. See docs/architecture.md, "Shared mechanisms".
// The configuration helpers (yaml, valibot) are a separate entry, `@nexus-proxy/common/config`, so that
// importing the runtime mechanisms never loads them. The heap tuning of a relaying process is
// `@nexus-proxy/common/relay-heap`, light enough to load before anything else.
export { Backoff, type BackoffSettings, computeBackoffDelay } from './backoff.js';
export {
  BufferPool,
  type BufferReturn,
  type ElasticPoolOptions,
  FreeBytes,
  type HeldBytesCounter,
  POOL_TRIM_INTERVAL_MS,
  SizedBufferPools,
  WrittenBuffers,
} from './buffer-pool.js';
export { BurstReads, HeldReadBudget, type HeldReadWaiter, ReadBufferBudget } from './read-buffer-budget.js';
export {
  DATA_PAYLOAD_HEADER,
  DEFAULT_HUB_PORT,
  DEFAULT_PEER_PORT,
  HUB_PATH,
  MESH_PATH,
} from './endpoints.js';
export {
  DEFAULT_FLOW_SWEEP_MS,
  FLOW_REORDER_MS,
  type FlowEndReason,
  type FlowEntry,
  FlowTable,
  type FlowTableOptions,
} from './flow-table.js';
export { FRAME_ROOM, frameRoom, lendFrameRoom } from './frame-room.js';
export { fileProblem, unreadableFileDetail } from './file-problem.js';
export { Keepalive, type KeepaliveHooks, type KeepaliveTiming } from './keepalive.js';
export { type LogFn, type Logger, type LogLevel, noopLogger } from './logger.js';
export { LogRateLimit, type LogRateLimitOptions } from './log-rate-limit.js';
export { REJECT_UPGRADE_GRACE_MS, rejectUpgrade } from './reject-upgrade.js';
export {
  createWsBinarySender,
  DATA_HIGH_WATER_MARK,
  type WsBinarySender,
  type WsBinarySenderOptions,
} from './ws-binary-sender.js';
export {
  type BinaryPartsHandler,
  takeBinaryMessagesAsViews,
  WsFrameSplitter,
  type WsFrameSplitterOptions,
} from './ws-data-frames.js';
export { createWsFrameWriter, type WsFrameWriter } from './ws-frame-writer.js';
export {
  checkWsInternals,
  checkWsReceiverInternals,
  WS_INTERNALS_VERSION,
  type WsInternals,
  wsInternals,
} from './ws-internals.js';
