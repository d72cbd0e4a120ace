import { describe, expect, it } from 'vitest';
import { COMMON_PACKAGE } from '../src/index.js';

describe('@nexus-proxy/common', () => {
  it('names itself', () => {
    expect(COMMON_PACKAGE).toBe('@nexus-proxy/common');
  });
});
