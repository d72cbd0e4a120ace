import type * as v from 'valibot';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { NexusConfigInput } from '../src/config.js';
import { nodeConfigSchema } from '../src/config/schema.js';

/** What the schema accepts, as TypeScript infers it from the section schemas. */
type SchemaInput = v.InferInput<(typeof nodeConfigSchema)['pipe'][2]>;

// These assertions are checked by `npm run typecheck` (tsc), which fails when the documented input type
// and the schemas drift apart.
describe('node configuration types', () => {
  it('every document typed as NexusConfigInput is one the schemas accept', () => {
    // logLevel is typed `string` for callers that pass a flag through; the schema narrows it at run time.
    expectTypeOf<Omit<NexusConfigInput, 'logLevel'>>().toExtend<SchemaInput>();
    expectTypeOf<{ relayPorts: string }>().not.toExtend<SchemaInput>();
    expectTypeOf<{ limits: { maxSessions: string } }>().not.toExtend<SchemaInput>();
    expect(Object.keys(nodeConfigSchema.pipe[2].entries)).toContain('limits');
  });
});
