/** The backend client's version: the `version` of its package.json, inlined when the package is built. */
import manifest from '../package.json' with { type: 'json' };

/** Version reported by `nexus-backend --version` and its startup log line. */
export const VERSION: string = manifest.version;
