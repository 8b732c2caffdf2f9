#!/usr/bin/env bash
# Installs the Debian 12 packages ferry needs to build, test and benchmark, if any is missing.
# Idempotent and quick when everything is there. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libdcmtk-dev dcmtk
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pydicom python3-numpy
  libcurl4-openssl-dev libssh-dev
  openssl procps
  orthanc orthanc-dicomweb
  openssh-server openssh-client
  libsqlite3-dev sqlite3 libpq-dev postgresql libsodium-dev libcpp-httplib-dev
  python3-aiosmtpd libxxhash-dev
  podman runc debootstrap python3-pydantic
  chromium
)
# Node.js and npm run s3rver (the S3 test peer). A machine that already has them (for example from
# NodeSource) keeps its own; Debian's npm would conflict with it.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm packages for test peers (s3rver as the S3 destination), pinned by tests/peers/package-lock.json.
install_npm_peers() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/peers"
  if [ -f "$dir/package.json" ] && [ ! -x "$dir/node_modules/.bin/s3rver" ]; then
    echo "install-deps: installing npm test peers in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The web UI's npm packages (web/package-lock.json): Vue, Vite, the type checker, Vitest and
# playwright-core, which drives Debian's chromium in the browser tests (it downloads no browser).
# scripts/build-web.sh runs the same `npm ci` when the lock file changes later.
install_npm_web() {
  "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/build-web.sh" --deps-only
}

if [ ${#missing[@]} -eq 0 ]; then
  install_npm_peers
  install_npm_web
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# Debian's orthanc package starts its own service when it can; ferry's benchmark starts its own
# Orthanc on a free port instead, so keep the packaged one from being started.
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
install_npm_peers
install_npm_web
