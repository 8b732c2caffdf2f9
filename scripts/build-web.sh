#!/usr/bin/env bash
# Builds the web UI (web/ -> web/dist) when something changed; quick when nothing did.
#   scripts/build-web.sh [--deps-only] [FERRY_OPENAPI]
# 1. `npm ci` when web/package-lock.json is newer than the last install (node_modules/.ferry-ci).
# 2. With FERRY_OPENAPI (build/ferry_openapi): the OpenAPI document it prints replaces
#    web/src/api/openapi.json when it differs, and web/src/api/schema.d.ts is generated from it,
#    so a changed endpoint shows up as a type error in step 3.
# 3. `vue-tsc` and `vite build` when a source is newer than web/dist/index.html.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
web="$root/web"
deps_only=0
if [ "${1:-}" = "--deps-only" ]; then
  deps_only=1
  shift
fi
openapi_bin="${1:-}"

if ! command -v npm >/dev/null 2>&1; then
  echo "build-web: npm is missing; run scripts/install-deps.sh" >&2
  exit 1
fi
stamp="$web/node_modules/.ferry-ci"
if [ ! -f "$stamp" ] || [ "$web/package-lock.json" -nt "$stamp" ]; then
  echo "build-web: npm ci in web/"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
[ "$deps_only" = 1 ] && exit 0

if [ -n "$openapi_bin" ]; then
  tmp="$(mktemp)"
  trap 'rm -f "$tmp"' EXIT
  "$openapi_bin" >"$tmp"
  if ! cmp -s "$tmp" "$web/src/api/openapi.json" || [ ! -f "$web/src/api/schema.d.ts" ]; then
    echo "build-web: the API changed; regenerating web/src/api/schema.d.ts"
    cp "$tmp" "$web/src/api/openapi.json"
    (cd "$web" && npx --no-install openapi-typescript src/api/openapi.json -o src/api/schema.d.ts \
      --silent)
  fi
fi

index="$web/dist/index.html"
if [ -f "$index" ] && [ -z "$(find "$web/src" "$web/public" "$web/index.html" "$web/vite.config.ts" \
    "$web/tsconfig.json" "$web/package-lock.json" -newer "$index" -print -quit)" ]; then
  exit 0
fi
echo "build-web: type check and vite build of web/"
(cd "$web" && npx --no-install vue-tsc --noEmit && npx --no-install vite build --logLevel warn)
touch "$index"
