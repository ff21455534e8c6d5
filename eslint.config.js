// ESLint flat config: typescript-eslint's recommended rules over lib/, test/ and bench/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-*/', 'prebuilds/', 'node_modules/', '.fuzz/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        Buffer: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        Request: 'readonly',
        Response: 'readonly',
        Headers: 'readonly',
        ReadableStream: 'readonly',
        queueMicrotask: 'readonly',
        performance: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    /* Node.js exposes these globals through getters on globalThis: each use in optimized code
       is a global-load inline cache and a getter call. The modules give the same objects as
       plain bindings. */
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'Buffer', message: "import { Buffer } from 'node:buffer'" },
        { name: 'process', message: "import process from 'node:process'" },
        { name: 'TextEncoder', message: "import { TextEncoder } from 'node:util'" },
        { name: 'TextDecoder', message: "import { TextDecoder } from 'node:util'" },
        { name: 'performance', message: "import { performance } from 'node:perf_hooks'" },
      ],
    },
  },
);
