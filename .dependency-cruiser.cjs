/**
 * Import rules checked by `npm run lint` (`depcruise packages`).
 *
 * Why dependency-cruiser and not madge: both find import cycles, but dependency-cruiser also checks the
 * other rules below in the same pass (no source module imports a test, none depends on a package that is
 * only a devDependency), resolves TypeScript's NodeNext `.js` specifiers through the tsconfig as the
 * compiler does, and keeps its configuration in a file that can say why each rule exists. It runs in a
 * few seconds on the whole repository.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Modules that import each other cannot be read, tested or loaded alone; one of them holds what both ' +
        'need. Type-only imports are erased at build time, so two modules whose types name each other (a ' +
        'stream and its host) are not a cycle.',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'src-not-to-test',
      severity: 'error',
      comment: 'Published code never imports test code.',
      from: { path: '^packages/[^/]+/src/', pathNot: '^packages/test-harness/' },
      to: { path: '^packages/[^/]+/test/|^packages/test-harness/' },
    },
    {
      name: 'src-not-to-dev-dependency',
      severity: 'error',
      comment: 'A package installed from the registry has no devDependencies: its sources may not need one.',
      from: { path: '^packages/[^/]+/src/', pathNot: '^packages/test-harness/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve fails at run time.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules|\\.turbo)/' },
    includeOnly: '^packages/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    combinedDependencies: true,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
