import { createMemoryPair, runSessionSuite } from './suites/session.suite.js';

runSessionSuite('an in-memory transport', createMemoryPair);
