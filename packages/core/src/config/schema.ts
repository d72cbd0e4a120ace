/**
 * The node configuration's schema: every section's keys in one strict mapping, plus the keys of later
 * reference versions that Nexus accepts and ignores (each with a warning).
 */
import { configJsonSchema, describeValue, ignoredKeys, mapping } from '@nexus-proxy/common/config';
import { adminFields } from './admin.js';
import { authFields } from './auth.js';
import { bandwidthFields } from './bandwidth.js';
import { claimFields } from './claims.js';
import { discoveryFields } from './discovery.js';
import { hubFields } from './hub-tls.js';
import { keepaliveFields } from './keepalive.js';
import { limitFields } from './limits.js';
import { listenerFields } from './listeners.js';
import { meshFields } from './mesh.js';
import { outboundFields } from './outbound.js';
import { registrationFields } from './registration.js';
import { remoteVerifierFields } from './remote-verifier.js';
import { stunFields } from './stun.js';
import { udpFields } from './udp.js';

/** Keys of later reference versions that Nexus accepts but does not implement (a warning each). */
export const UNSUPPORTED_REFERENCE_KEYS = ['peerSecret'] as const;

/** The whole document, section by section (the order errors are found in). */
export const nodeConfigSchema = mapping(
  {
    ...authFields,
    ...claimFields,
    ...remoteVerifierFields,
    ...listenerFields,
    ...meshFields,
    ...discoveryFields,
    ...hubFields,
    ...limitFields,
    ...keepaliveFields,
    ...adminFields,
    ...stunFields,
    ...udpFields,
    ...registrationFields,
    ...outboundFields,
    ...bandwidthFields,
    ...ignoredKeys(
      UNSUPPORTED_REFERENCE_KEYS,
      'A setting of later reference versions that Nexus does not implement; ignored with a warning.',
    ),
  },
  (x) => `the configuration must be a mapping (got ${describeValue(x)})`,
);

/**
 * The JSON Schema (draft-07) of the node configuration file, for editors (the YAML language server's
 * `yaml.schemas`) and other tools. `nexus-proxy config schema` prints it.
 */
export function nexusConfigJsonSchema(): Record<string, unknown> {
  return configJsonSchema(nodeConfigSchema, {
    title: 'Nexus Proxy node configuration',
    description: 'The YAML file `nexus-proxy serve --config` reads; see docs/configuration.md.',
  }) as Record<string, unknown>;
}
