#!/usr/bin/env bash
# The release command (`npm run pack`): a clean build, then one tarball per published package
# (every packages/* without "private": true) in dist-packages/, or in the directory given as the
# first argument. pnpm pack writes the real version in place of each `workspace:*`, so that npm
# installs the tarballs anywhere; the script refuses to leave a tarball that still has one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-$root/dist-packages}"

pnpm_version="$(node -p "require('./package.json').packageManager.split('@')[1]")"

published=()
for dir in packages/*/; do
  if ! grep -q '"private": true' "${dir}package.json"; then published+=("${dir%/}"); fi
done

bash scripts/dev.sh build
# tsc -b keeps the outputs of sources deleted since an earlier build: remove them, so that a
# tarball holds only what the sources build.
node - "${published[@]}" <<'NODE'
const fs = require('node:fs')
const path = require('node:path')
for (const dir of process.argv.slice(2)) {
  const dist = path.join(dir, 'dist')
  for (const file of fs.readdirSync(dist, { recursive: true })) {
    const match = /^(.*)\.(js|d\.ts)(\.map)?$/.exec(file)
    if (match && !fs.existsSync(path.join(dir, 'src', `${match[1]}.ts`))) fs.rmSync(path.join(dist, file))
  }
}
NODE

mkdir -p "$out"
rm -f "$out"/*.tgz
# One npx for every package: pnpm pack rewrites workspace:* into the version of the package named.
ESK_PACK_DIRS="${published[*]}" ESK_PACK_OUT="$out" npx --yes --package "pnpm@${pnpm_version}" -c \
  'for dir in $ESK_PACK_DIRS; do (cd "$dir" && pnpm pack --pack-destination "$ESK_PACK_OUT" >/dev/null) || exit 1; done'

# Every tarball: a manifest without the workspace protocol, and the files its exports name.
node - "$out" <<'NODE'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const dir = process.argv[2]
const problems = []
const tarballs = fs.readdirSync(dir).filter((f) => f.endsWith('.tgz')).sort()
for (const file of tarballs) {
  const tarball = path.join(dir, file)
  const manifest = execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })
  const listed = new Set(execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n'))
  if (manifest.includes('workspace:')) problems.push(`${file}: package.json still names a workspace: version`)
  const targets = (value) => (typeof value === 'string' ? [value] : Object.values(value ?? {}).flatMap(targets))
  for (const target of targets(JSON.parse(manifest).exports)) {
    if (!listed.has(`package/${target.replace(/^\.\//, '')}`)) problems.push(`${file}: exports name ${target}, which is not in the tarball`)
  }
  const shown = path.relative(process.cwd(), tarball)
  console.log(`${shown.startsWith("..") ? tarball : shown} (${listed.size - 1} files)`)
}
if (tarballs.length === 0) problems.push(`no tarball in ${dir}`)
if (problems.length > 0) {
  for (const p of problems) console.error(`pack: ${p}`)
  process.exit(1)
}
NODE
