import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type Logger, noopLogger } from '../src/logger.js';

describe('noopLogger', () => {
  it('accepts every call shape and returns itself from child()', () => {
    expect(() => {
      noopLogger.trace?.('x');
      noopLogger.debug({ a: 1 }, 'x');
      noopLogger.info('x %s', 'y');
      noopLogger.warn(new Error('x'));
      noopLogger.error({ err: new Error('x') });
    }).not.toThrow();
    expect(noopLogger.child({ component: 'hub' })).toBe(noopLogger);
    expect(noopLogger.isLevelEnabled?.('trace')).toBe(false);
  });
});

describe('Logger', () => {
  it('is satisfied by a pino logger', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log: Logger = pino({ level: 'debug' }, sink);
    expectTypeOf(pino()).toExtend<Logger>();
    log.child({ component: 'hub' }).info({ n: 1 }, 'hello');
    expect(log.isLevelEnabled?.('trace')).toBe(false);
    expect(log.isLevelEnabled?.('debug')).toBe(true);
    // pino writes synchronously to a plain Writable.
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ component: 'hub', n: 1, msg: 'hello' });
  });
});
