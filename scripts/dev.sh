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

build() {
  ensure_deps
  node_modules/.bin/tsc -b
  # esk is ESM only: a published package's "require" export condition points to this file, which
  # tells a Node that cannot require() ES modules what to do instead.
  local dir
  for dir in packages/*/; do
    if [[ -d "${dir}dist" ]] && ! grep -q '"private": true' "${dir}package.json"; then
      cp scripts/require-esm.cjs "${dir}dist/require.cjs"
    fi
  done
}

# Tests run through vitest's transpiler, which does not type-check: do it here.
typecheck_tests() { node_modules/.bin/tsc -p scripts/tsconfig.tests.json; }

# One plain closing line ("N passed, N failed, N skipped") for tools that read it, summed over
# every vitest report given. Above it, each failed test (or file that failed to load) with the
# first line of its error, so that the last lines of a long log say what broke.
summarize() {
  node -e '
    const fs = require("fs")
    const path = require("path")
    let passed = 0, failed = 0, skipped = 0
    const failures = []
    const firstLine = (text) => String(text ?? "").replace(/\x1b\[[0-9;]*m/g, "").trim().split("\n")[0].slice(0, 300)
    for (const file of process.argv.slice(1)) {
      if (!fs.existsSync(file)) continue
      const r = JSON.parse(fs.readFileSync(file, "utf8"))
      passed += r.numPassedTests
      failed += r.numFailedTests
      skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
      for (const suite of r.testResults ?? []) {
        const where = path.relative(process.cwd(), suite.name)
        const tests = (suite.assertionResults ?? []).filter((t) => t.status === "failed")
        for (const t of tests) failures.push(`FAILED ${where} > ${t.fullName}: ${firstLine(t.failureMessages?.[0])}`)
        if (suite.status === "failed" && tests.length === 0) failures.push(`FAILED ${where}: ${firstLine(suite.message)}`)
      }
    }
    for (const line of failures) console.log(line)
    console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  ' "$@"
}

# The newest Kafka release the Kafka tier is also run against (the stack's default is 3.9.1).
KAFKA_NEXT=4.4.0

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
    mkdir -p reports
    rm -f reports/vitest.json reports/vitest-kafka-next.json
    status=0
    # esk as another project installs it (scripts/install-check.sh), unless the run was narrowed
    # to some files. Its PASS/FAIL line is repeated before the summary.
    install_check="install check: skipped"
    if [[ $# -eq 0 && "${ESK_SKIP_INSTALL_CHECK:-}" != "1" ]]; then
      if ! bash scripts/install-check.sh 2>&1 | tee reports/install-check.txt; then status=1; fi
      install_check="$(grep '^install check: \(PASS\|FAIL\)' reports/install-check.txt || echo 'install check: FAIL (no result)')"
    fi
    if [[ "${ESK_SKIP_STACK:-}" == "1" ]]; then
      node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@" || status=$?
    else
      bash scripts/stack.sh start
      node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@" || status=$?
      # The Kafka tier again on the newest 4.x broker, unless the run was narrowed to some files.
      if [[ $# -eq 0 && "${ESK_SKIP_KAFKA_NEXT:-}" != "1" ]]; then
        bash scripts/stack.sh stop
        ESK_KAFKA_VERSION=$KAFKA_NEXT bash scripts/stack.sh start
        echo "== the Kafka integration tier on Kafka $KAFKA_NEXT"
        node_modules/.bin/vitest run --project int packages/kafka/test --reporter=default --reporter=json \
          --outputFile.json=reports/vitest-kafka-next.json || status=$?
        # Leave the default stack running, as a run without this tier does (CI has no use for it).
        bash scripts/stack.sh stop
        if [[ -z "${CI:-}" ]]; then bash scripts/stack.sh start; fi
      fi
    fi
    echo "$install_check"
    summarize reports/vitest.json reports/vitest-kafka-next.json
    exit "$status"
    ;;
  pack) bash scripts/pack.sh "${@:2}" ;;
  install-check) bash scripts/install-check.sh ;;
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
    echo "usage: scripts/dev.sh install|build|example [name] [args]|test [vitest args]|unit|bench|pack [dir]|install-check" >&2
    exit 2
    ;;
esac
