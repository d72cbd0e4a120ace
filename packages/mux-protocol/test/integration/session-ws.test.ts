import { runSessionSuite } from '../suites/session.suite.js';
import { createWebSocketPair } from '../suites/ws-pair.js';

runSessionSuite('a real WebSocket on 127.0.0.1', createWebSocketPair);
