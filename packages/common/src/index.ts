// @nexus-proxy/common: one home for the mechanisms that the node (@nexus-proxy/core) and the backend
// client (@nexus-proxy/backend-client) both need. See docs/architecture.md.
export const COMMON_PACKAGE = '@nexus-proxy/common';
