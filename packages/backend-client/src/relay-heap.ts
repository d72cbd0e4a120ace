/**
 * The heap tuning of a process dedicated to relaying (`@nexus-proxy/common/relay-heap`), offered as
 * `@nexus-proxy/backend-client/relay-heap` for a process of its own that embeds the client: import it
 * first thing and call {@link tuneHeapForRelaying}.
 */
export { countReceivedBytes, RELAY_HEAP_FLAG, tuneHeapForRelaying } from '@nexus-proxy/common/relay-heap';
