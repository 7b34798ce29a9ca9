#!/usr/bin/env bash
# Entry point behind the README's commands (`npm run example`, `npm test`): Node 20 and npm are
# all a fresh machine has, so pnpm is run through npx at the version package.json pins.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

pnpm_version="$(node -p "require('./package.json').packageManager.split('@')[1]")"
pnpm() { npx --yes "pnpm@${pnpm_version}" "$@"; }

ensure_deps() {
  # Reinstall when the lockfile changed since the last install (or there was none).
  if [[ ! -f node_modules/.modules.yaml || pnpm-lock.yaml -nt node_modules/.modules.yaml ]]; then
    if [[ -f pnpm-lock.yaml ]]; then pnpm install --frozen-lockfile; else pnpm install; fi
  fi
}

build() { ensure_deps; node_modules/.bin/tsc -b; }

# Tests run through vitest's transpiler, which does not type-check: do it here.
typecheck_tests() { node_modules/.bin/tsc -p scripts/tsconfig.tests.json; }

# One plain closing line ("N passed, N failed, N skipped") for tools that read it.
summarize() {
  [[ -f "$1" ]] || return 0
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`)
  ' "$1"
}

case "${1:-}" in
  install) ensure_deps ;;
  build) build ;;
  example)
    shift
    # The name is optional, so that `npm run example -- --kafka` runs bank-account with --kafka.
    name=bank-account
    if [[ $# -gt 0 && "$1" != -* ]]; then name="$1"; shift; fi
    build
    # --kafka means the local stack unless the brokers are named (ESK_KAFKA_BROKERS or --brokers).
    kafka=0 brokers_named=0
    for arg in "$@"; do
      case "$arg" in
        --kafka) kafka=1 ;;
        --brokers | --brokers=*) brokers_named=1 ;;
      esac
    done
    if ((kafka && !brokers_named)) && [[ -z "${ESK_KAFKA_BROKERS:-}" ]]; then bash scripts/stack.sh start; fi
    node "examples/${name}/dist/main.js" "$@"
    ;;
  test)
    shift
    build
    typecheck_tests
    if [[ "${ESK_SKIP_STACK:-}" != "1" ]]; then bash scripts/stack.sh start; fi
    mkdir -p reports
    status=0
    node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@" || status=$?
    summarize reports/vitest.json
    exit "$status"
    ;;
  unit)
    shift
    ensure_deps
    node_modules/.bin/vitest run --project unit "$@"
    ;;
  bench)
    shift
    build
    bash scripts/stack.sh start
    node packages/bench/dist/main.js "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh install|build|example [name] [args]|test [vitest args]|unit|bench" >&2
    exit 2
    ;;
esac
