'use strict'
// Copied by `scripts/dev.sh build` to dist/require.cjs of every published package, which the
// "require" export condition points to. esk is ESM only: Node 20.19+ and 22.12+ load it through
// require() by the "module-sync" condition, which comes first; an older Node, or one run with
// --no-experimental-require-module, gets here and is told what to do instead.
const { name } = require('../package.json')
const error = new Error(
  `${name} is an ES module (esk is ESM only), and this Node cannot load ES modules with require(). ` +
    `Use import (import { ... } from '${name}'), or await import('${name}') from CommonJS, ` +
    'or run Node 20.19+ or 22.12+, whose require() loads ES modules.',
)
error.code = 'ERR_REQUIRE_ESM'
throw error
