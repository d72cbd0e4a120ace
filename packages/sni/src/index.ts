// TLS ClientHello
export {
  type ClientHelloInfo,
  ClientHelloReader,
  type ClientHelloResult,
  DEFAULT_MAX_CLIENT_HELLO_SIZE,
  MAX_TLS_RECORD_PAYLOAD,
  type NotTlsReason,
  type ParseClientHelloOptions,
  parseClientHello,
  TLS_RECORD_HEADER_LENGTH,
} from './client-hello.js';
// Hostnames
export {
  isValidHostnamePattern,
  MAX_HOSTNAME_LENGTH,
  MAX_LABEL_LENGTH,
  matchesHostname,
  normalizeHostname,
  normalizeHostnamePattern,
  parseWildcard,
  type WildcardPattern,
} from './hostname.js';
// HTTP request head
export {
  type BadHostReason,
  DEFAULT_MAX_HTTP_HEAD_SIZE,
  HttpHeadReader,
  type HttpRequestInfo,
  type HttpSniffResult,
  MAX_HTTP_METHOD_LENGTH,
  type NotHttpReason,
  type SniffHttpRequestOptions,
  sniffHttpRequest,
} from './http-request.js';
