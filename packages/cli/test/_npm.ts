/**
 * Running npm, npx, node and git as child processes for the install tests (`pack-install`, `fresh-clone`):
 * with the environment of a user's shell, not of the enclosing `npm test`.
 */
import { execFile } from 'node:child_process';

export interface Run {
  stdout: string;
  stderr: string;
}

/** npm settings that may pass through to the child npm: where it caches and which CAs / registry it trusts. */
const KEPT_NPM_ENV = new Set([
  'npm_config_cache',
  'npm_config_cafile',
  'npm_config_registry',
  'npm_config_userconfig',
  'npm_config_globalconfig',
]);

/**
 * The environment without the `npm_*` variables an enclosing `npm test` sets: `npm_config_local_prefix`
 * would make the child `npm install` install into the repository instead of the temporary project.
 */
export function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1', TURBO_TELEMETRY_DISABLED: '1' };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith('npm_') || KEPT_NPM_ENV.has(key.toLowerCase())) env[key] = value;
  }
  return env;
}

/** Runs `command`; rejects with its stderr when it fails or outlives `timeoutMs`. */
export function run(command: string, args: string[], cwd: string, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: childEnv() },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve({ stdout, stderr });
      },
    );
  });
}
