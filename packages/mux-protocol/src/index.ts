// biome-ignore-all assist/source/organizeImports: the public surface is grouped by concern, not by path

// Codec
export {
  DATA_HEADER_LENGTH,
  type DecodeResult,
  FrameType,
  type FrameTypeValue,
  type IgnoredMessage,
  MAX_BACKEND_MESSAGE,
  MAX_DATA_PAYLOAD,
  STREAM_ID_LENGTH,
  TUNNEL_CREDITS_LENGTH,
} from './frame.js';

export {
  checkOfferedDataPayload,
  isOfferableDataPayload,
  OFFERED_DATA_PAYLOAD_RANGE,
  type FrameSizeTuning,
  frameSizeTuning,
  MAX_OFFERED_DATA_PAYLOAD,
  NEXUS_DATA_PAYLOAD,
  parseOfferedDataPayload,
  peerDataPayload,
} from './frame-size.js';

export {
  isStreamId,
  NIL_STREAM_ID,
  newStreamId,
  normalizeStreamId,
  streamIdFromBytes,
  streamIdToBytes,
  writeStreamId,
} from './stream-id.js';

export {
  type ConnectMessage,
  ControlEvent,
  type ControlEventName,
  type ControlMessage,
  type DisconnectMessage,
  DisconnectReason,
  type OutboundConnectMessage,
  type OutboundResultMessage,
  type PauseStreamMessage,
  type PingClientMessage,
  type PongClientMessage,
  type ResumeStreamMessage,
  serializeControlMessage,
  type UnknownControlMessage,
} from './control.js';

export {
  encodeControlMessage,
  encodeDataFrame,
  joinDataParts,
  encodeDataFrames,
  splitPayload,
  writeDataHeader,
} from './encode.js';

export {
  type BackendFrame,
  type ControlFrame,
  type DataFrame,
  type DecodeBackendMessageOptions,
  type DecodedBackendMessage,
  decodeBackendMessage,
  decodeControlPayload,
  type UnknownControlFrame,
} from './decode.js';

export {
  type AnnounceMessage,
  type DecodePeerMessageOptions,
  type DecodeTunnelFrameOptions,
  decodePeerMessage,
  decodeTunnelFrame,
  encodePeerMessage,
  encodeTunnelFrame,
  MAX_PEER_TEXT_MESSAGE,
  type PeerMessage,
  type TunnelFrame,
  type TunnelRequestMessage,
  type UnknownPeerMessage,
} from './peer.js';
export {
  type PeerCapabilities,
  ROUTE_DELTAS_VERSION,
  ROUTE_SYNC_TYPES,
  type RouteDeltaMessage,
  type RouteResyncMessage,
  type RouteStateMessage,
  type RouteSyncMessage,
} from './peer-routes.js';

// Flow control
export {
  DEFAULT_GRANT_BATCH,
  DEFAULT_INITIAL_WINDOW,
  MAX_CREDITS,
  ReceiveLedger,
  type ReceiveLedgerOptions,
  SendWindow,
  type SendWindowOptions,
} from './flow-window.js';
export {
  DEFAULT_MAX_BUFFERED_BYTES,
  RECEIVE_BUDGET_FLOOR,
  RECEIVE_BUDGET_GRAIN,
  RECEIVE_BUDGET_RELAXED,
  RECEIVE_BUDGET_START,
  ReceiveBudget,
  type ReceiveBudgetShare,
} from './receive-budget.js';
export {
  MAX_WINDOW_BYTES,
  MIN_GROWTH_RTT_MS,
  WINDOW_GROWTH_POOL_BYTES,
  type WindowGrowth,
  WindowGrowthPool,
  WindowTuner,
} from './window-tuning.js';

// Errors
export {
  MuxProtocolError,
  type MuxProtocolErrorCode,
  type MuxProtocolErrorOptions,
  WS_CLOSE_INTERNAL_ERROR,
  WS_CLOSE_MESSAGE_TOO_BIG,
  WS_CLOSE_POLICY_VIOLATION,
} from './errors.js';

// Stream engine
export {
  DEFAULT_BACKLOG_GRACE_MS,
  DEFAULT_BACKLOG_LIMIT,
  DEFAULT_MAX_EMPTY_DATA_FRAMES_PER_SECOND,
  DEFAULT_MAX_STREAMS,
  DEFAULT_MAX_UNKNOWN_STREAM_REPLIES,
  DEFAULT_STREAM_HIGH_WATER_MARK,
  DEFAULT_TRANSPORT_HIGH_WATER_MARK,
  DEFAULT_UNMETERED_ALLOWANCE,
  type EngineAbortReason,
  type EngineStreamInit,
  type StreamEngineCounters,
  type StreamEngineOptions,
  type StreamEngineTuning,
} from './engine-options.js';

export { StreamEngine } from './engine.js';

export { backendFraming, type FramingEvent, type StreamFraming, tunnelFraming } from './framing.js';

export type { MuxLogger, MuxTransport } from './transport.js';

export { MuxStream } from './stream.js';

export type {
  LocalEndBehaviour,
  MuxStreamInit,
  ReceiveMetering,
  SendMetering,
  StreamHost,
} from './stream-host.js';

// Backend session
export {
  DEFAULT_MAX_PENDING_OUTBOUND,
  MuxSession,
  type MuxSessionEvents,
  type MuxSessionOptions,
  type MuxSessionStats,
  type OpenOutboundOptions,
  type OpenStreamInit,
} from './session.js';

// Peer-link tunnels
export {
  DEFAULT_MAX_TUNNELS_PER_LINK,
  type TunnelInit,
  TunnelSession,
  type TunnelSessionEvents,
  type TunnelSessionOptions,
  type TunnelSessionStats,
  type TunnelTransport,
} from './tunnel-session.js';
