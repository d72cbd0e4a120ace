/**
 * The logger interface core components accept is `@nexus-proxy/common`'s (shared with the backend
 * client): a subset of pino's, so a pino logger can be passed as is; the default is {@link noopLogger}.
 * Components derive a scoped logger with `logger.child({ component: 'hub' })`.
 */
export { type LogFn, type Logger, type LogLevel, noopLogger } from '@nexus-proxy/common';
