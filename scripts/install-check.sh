#!/usr/bin/env bash
# Installs esk as an application outside this workspace would, and uses it: builds and packs the
# published packages (scripts/pack.sh), creates a project under /tmp, installs the tarballs with
# npm (class-transformer, reflect-metadata, typescript and @types/node from the registry; no
# vitest), type-checks scripts/install-check/ strictly without skipLibCheck, runs its program on
# the memory driver and its node:test file on @esk/testing, checks require() of every package, and
# checks that exactly one class-transformer, reflect-metadata and @esk/core are installed.
# Prints PASS or FAIL and exits non-zero on failure. ESK_INSTALL_CHECK_KEEP=1 keeps the project.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
started=$SECONDS
work="$(mktemp -d /tmp/esk-install-check.XXXXXX)"
app="$work/app"
log="$work/log.txt"

finish() {
  local status=$?
  if [[ $status -eq 0 ]]; then
    echo "install check: PASS ($((SECONDS - started)) s)"
  else
    echo "install check: FAIL ($((SECONDS - started)) s); the project is in $work"
  fi
  if [[ $status -eq 0 && "${ESK_INSTALL_CHECK_KEEP:-}" != "1" ]]; then rm -rf "$work"; fi
  exit "$status"
}
trap finish EXIT

# Runs a step with its output in the log; on failure shows the log's end and stops.
step() {
  local what="$1"
  shift
  local from=$SECONDS
  echo "== $what"
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" | sed 's/^/   /'
    echo "install check: step failed: $what"
    exit 1
  fi
  echo "   ($((SECONDS - from)) s)"
}

step "build and pack (scripts/pack.sh)" bash "$root/scripts/pack.sh" "$work/packages"
sed 's/^/   /' "$log" | grep '\.tgz'

mkdir -p "$app"
cp -r "$root/scripts/install-check/." "$app/"
# The application's manifest: the tarballs, and what esk asks the application to install.
node - "$work/packages" "$app/package.json" "$root" <<'NODE'
const fs = require('node:fs')
const path = require('node:path')
const [packages, target, root] = process.argv.slice(2)
const dependencies = {}
for (const file of fs.readdirSync(packages).filter((f) => f.endsWith('.tgz'))) {
  const name = '@esk/' + file.replace(/^esk-/, '').replace(/-\d+\.\d+\.\d+.*\.tgz$/, '')
  dependencies[name] = `file:${path.join(packages, file)}`
}
const peers = require(path.join(root, 'packages/core/package.json')).peerDependencies
dependencies['class-transformer'] = peers['class-transformer']
dependencies['reflect-metadata'] = peers['reflect-metadata']
const workspace = require(path.join(root, 'package.json')).devDependencies
const manifest = {
  name: 'esk-install-check',
  private: true,
  type: 'module',
  dependencies,
  devDependencies: { typescript: workspace.typescript, '@types/node': workspace['@types/node'] },
}
fs.writeFileSync(target, JSON.stringify(manifest, null, 2) + '\n')
NODE

cd "$app"
step "npm install (tarballs, class-transformer, reflect-metadata, typescript, @types/node)" \
  npm install --no-audit --no-fund --prefer-offline --loglevel=error
step "npm ls: a complete tree, every peer dependency met" npm ls --all

# Exactly one installed copy of each module whose state must be shared.
one_copy() {
  local name copies
  for name in class-transformer reflect-metadata @esk/core; do
    copies="$(find . -path "*/node_modules/$name/package.json" | wc -l)"
    echo "$name: $copies installed"
    [[ "$copies" == 1 ]] || return 1
  done
  [[ ! -e node_modules/vitest ]] || { echo "vitest is installed, but nothing here asked for it"; return 1; }
}
step "one copy of class-transformer, reflect-metadata and @esk/core; no vitest" one_copy
sed 's/^/   /' "$log"

step "tsc: strict, NodeNext, no skipLibCheck" node_modules/.bin/tsc -p tsconfig.json
step "run the program (memory driver, @Type(() => Date))" node dist/src/app.js
sed 's/^/   /' "$log"
step "node:test with @esk/testing (no vitest)" node --test dist/test/order.test.js
grep -E '^# (pass|fail)' "$log" | sed 's/^/   /'

# A fixture failure under node:test: the run fails, and the report shows both sides.
mismatch() {
  if node --test dist/test/mismatch.fails.js; then echo "the failing test passed"; return 1; fi
}
step "a fixture mismatch fails a node:test run" mismatch
if ! grep -q 'FixtureMismatch' "$log" || ! grep -q 'the events differ' "$log" || ! grep -q 'expected \[' "$log"; then
  sed 's/^/   /' "$log"
  echo "install check: step failed: the node:test report does not show the FixtureMismatch and its message"
  exit 1
fi
grep -A2 -m1 'the events differ' "$log" | sed 's/^ */   /'

step "require(): works through require of ES modules, or says ESM only" node require-check.cjs
sed 's/^/   /' "$log"
