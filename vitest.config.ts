import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// Tests run against the TypeScript sources, not dist/, so a test never sees a stale build.
// Subpaths map to files: @esk/core/driver -> packages/core/src/driver.ts, unless listed below.
const subpaths: Record<string, string> = {
  'testing/model': 'testing/src/contract/model.ts',
  'testing/contract': 'testing/src/contract/index.ts',
}
const alias = [
  {
    find: /^@esk\/([a-z]+)(\/[a-z]+)?$/,
    replacement: '$1$2',
    customResolver: (id: string) => {
      const [name, sub] = id.split('/')
      const file = sub ? (subpaths[`${name}/${sub}`] ?? `${name}/src/${sub}.ts`) : `${name}/src/index.ts`
      return fileURLToPath(new URL(`./packages/${file}`, import.meta.url))
    },
  },
]

export default defineConfig({
  resolve: { alias },
  test: {
    // One broker and one redis-server on two cores: test files run one at a time (a per-project
    // setting is not supported; the unit files are fast enough either way).
    fileParallelism: false,
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.unit.spec.ts', 'examples/*/test/**/*.unit.spec.ts'],
          testTimeout: 20_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'int',
          include: ['packages/*/test/**/*.int.spec.ts', 'examples/*/test/**/*.int.spec.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
