/**
 * The node configuration. It lives in `./config/`, one file per section; this module keeps the import
 * path the rest of the package (and its tests) use.
 */
export * from './config/index.js';
