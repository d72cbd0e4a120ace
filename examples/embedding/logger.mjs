/**
 * A logger for core, written by hand to show the whole interface core needs: `debug/info/warn/error`
 * with pino's call shapes (`log(obj, msg)` or `log(msg)`), `child(bindings)`, and optionally
 * `isLevelEnabled(level)`. A pino logger can be passed instead, as it is.
 */
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** Lines at `level` (`trace`…`fatal`, or `silent`) and above go to stderr as `LEVEL message key=value…`. */
export function createConsoleLogger(level = 'info', bindings = {}) {
  const min = level === 'silent' ? LEVELS.length : Math.max(0, LEVELS.indexOf(level));
  const write = (name) => (objOrMsg, msg) => {
    if (LEVELS.indexOf(name) < min) return;
    const fields = typeof objOrMsg === 'object' && objOrMsg !== null ? objOrMsg : {};
    const text = typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '');
    const pairs = Object.entries({ ...bindings, ...fields }).map(([k, v]) => {
      const value = v instanceof Error ? v.message : v;
      return `${k}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
    });
    process.stderr.write(`${name.toUpperCase()} ${text} ${pairs.join(' ')}\n`);
  };
  return {
    trace: write('trace'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (more) => createConsoleLogger(level, { ...bindings, ...more }),
    isLevelEnabled: (name) => LEVELS.indexOf(name) >= min,
  };
}
