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
  openssl procps
  orthanc
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
