'use strict'
// require() of every esk entry from CommonJS. Where Node can require ES modules (20.19+, 22.12+)
// it loads the module an import gets; where it cannot (here simulated with
// --no-experimental-require-module), it throws an error that says esk is ESM only and what to do.
const { spawnSync } = require('node:child_process')

const entries = ['@esk/core', '@esk/core/driver', '@esk/memory', '@esk/kafka', '@esk/redis', '@esk/testing']

// Run in a child: requires each entry and prints, per entry, what it gave or threw.
function requireEach(names) {
  return names.map((name) => {
    try {
      return { name, exports: Object.keys(require(name)).length }
    } catch (error) {
      return { name, code: error.code, message: error.message }
    }
  })
}

function inChild(flags) {
  const script = `${requireEach};console.log(JSON.stringify(requireEach(${JSON.stringify(entries)})))`
  const run = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`node ${flags.join(' ')} failed:\n${run.stderr}`)
  return JSON.parse(run.stdout)
}

const failures = []
if (process.features.require_module) {
  for (const r of inChild([])) {
    if (r.exports === undefined) failures.push(`require('${r.name}') failed where Node can require ES modules: ${r.code} ${r.message}`)
    else if (r.exports === 0) failures.push(`require('${r.name}') gave an empty module`)
  }
}
const refused = inChild(['--no-experimental-require-module'])
for (const r of refused) {
  const pkg = r.name.split('/').slice(0, 2).join('/')
  if (r.exports !== undefined) failures.push(`require('${r.name}') without require of ES modules did not throw`)
  else if (r.code !== 'ERR_REQUIRE_ESM' || !r.message.includes(`${pkg} is an ES module (esk is ESM only)`) || !r.message.includes(`from '${pkg}'`)) {
    failures.push(`require('${r.name}') without require of ES modules threw something else: ${r.code} ${r.message}`)
  }
}
if (failures.length > 0) {
  console.error(failures.join('\n'))
  process.exit(1)
}
const through = process.features.require_module ? 'load through require() on this Node' : 'cannot be required on this Node'
console.log(`require: ${entries.length} entries ${through}; without require of ES modules they throw ${refused[0].code}:`)
console.log(`  ${refused[0].message}`)
