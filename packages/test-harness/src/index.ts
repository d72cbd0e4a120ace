/**
 * The one node harness of the repository's integration tests (a private workspace package, never
 * published). Every package's tests import it as `@nexus-proxy/test-harness`; core's own tests resolve its
 * `@nexus-proxy/core` imports to core's source (core's vitest.config.ts and tsconfig.json), other
 * packages' tests to the built package.
 */
export * from './bytes.js';
export * from './client-hello.js';
export * from './delay-line.mjs';
export * from './end-users.js';
export * from './files.js';
export * from './logger.js';
export * from './nats-server.mjs';
export * from './node.js';
export * from './pki.js';
export * from './probes.js';
export * from './services.js';
export * from './udp.js';
export * from './wait.js';
export * from './wire-backends.js';
