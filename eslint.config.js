// eslint (flat config): JavaScript's and typescript-eslint's recommended rules over the code, the
// tests, the benchmarks and the scripts. Formatting is prettier's (npm run format); import
// directions are dependency-cruiser's (.dependency-cruiser.cjs). `npm run lint` runs all three.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test/fixtures/', 'bench/workloads/', 'examples/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // CommonJS config files (.dependency-cruiser.cjs) load with require().
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `_`-prefixed parameters and variables are unused on purpose (an interface's signature).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Control characters in patterns are kiln's subject: terminal escapes (ESC, BEL) in progress
      // output, NUL-padded tar header fields, C0 controls refused in names.
      'no-control-regex': 'off',
    },
  },
);
