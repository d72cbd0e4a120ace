/**
 * A test file's whole nodes (@nexus-proxy/test-harness `startNode`): one PKI for the file, and every node
 * (and whatever else a test adds to `cleanups`) closed after each test, last first.
 */
import {
  createTestPki,
  type StartNodeOptions,
  startNode,
  type TestNode,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll } from 'vitest';

export interface TestNodes {
  /** Closed after each test, last first. */
  readonly cleanups: Array<() => Promise<void> | void>;
  /** The file's PKI (from `beforeAll` on). */
  readonly pki: TestPki;
  /** Starts a node with the file's PKI; it is closed after the test. */
  node(name: string, options?: Omit<StartNodeOptions, 'pki' | 'name'>): Promise<TestNode>;
}

/** Registers the hooks; call once at the top of a test file. */
export function useTestNodes(): TestNodes {
  let pki: TestPki | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    pki = await createTestPki();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const current = (): TestPki => {
    if (pki === undefined) throw new Error('the PKI is created in beforeAll');
    return pki;
  };
  return {
    cleanups,
    get pki(): TestPki {
      return current();
    },
    // A plain function (no `this`), so that it can be destructured.
    node: async (name, options = {}) => {
      const n = await startNode({ pki: current(), name, ...options });
      cleanups.push(() => n.close());
      return n;
    },
  };
}
