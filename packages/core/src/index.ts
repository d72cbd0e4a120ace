// Errors
export type { NexusErrorOptions } from './errors.js';
export {
  AcmeError,
  AuthError,
  InvalidConfigError,
  LimitError,
  MAX_CLOSE_REASON_BYTES,
  NexusError,
  NexusErrorCode,
  NoRouteError,
  TlsError,
} from './errors.js';
// Logging
export type { LogFn, Logger, LogLevel } from './logger.js';
export { noopLogger } from './logger.js';
// TLS and ACME
export type { CertificateAndKey, CertificateAuthorityOptions, CertificateOptions } from './certificates.js';
export {
  createCertificateAuthority,
  createSelfSignedCertificate,
  DEFAULT_CA_VALIDITY_DAYS,
  DEFAULT_CERTIFICATE_VALIDITY_DAYS,
  issueCertificate,
} from './certificates.js';
