#!/usr/bin/env bash
# Builds the container images that ferry's processor tests and benchmark run, from Debian
# packages only (no image registry is needed): a minimal Debian with python3 and pydicom,
# imported into Podman's local store as localhost/ferry-test-python:1, and the test modules on
# top of it (tests/images/modules/<name>/). Quick when the images exist already.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
base=localhost/ferry-test-python:1

if ! podman image exists "$base"; then
  # The Debian mirror apt already uses, so that this works wherever apt does.
  mirror=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
               /etc/apt/sources.list.d/*.sources 2>/dev/null || true) \
           | grep -oE '^(URIs:|deb) +https?://[^ ]+' | grep -v security | head -n1 \
           | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d /var/tmp/ferry-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "build-images: debootstrap bookworm with python3-pydicom from $mirror (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-pydicom bookworm "$root" "$mirror" \
    > "$root.log" 2>&1 || { tail -n 20 "$root.log"; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" > /dev/null 2>&1
  echo "build-images: imported $base"
fi

# One image per test module (modules/<name>/Containerfile, built with modules/ as its context so
# that images share module.py), rebuilt when any module file changes.
sum=$(find "$here/modules" -type f | sort | xargs cat | sha256sum | cut -c1-12)
for dir in "$here"/modules/*/; do
  [ -f "$dir/Containerfile" ] || continue
  name=$(basename "$dir")
  image="localhost/ferry-test-$name:$sum"
  if ! podman image exists "$image"; then
    podman build --network none -q -t "$image" -t "localhost/ferry-test-$name:latest" \
      -f "$dir/Containerfile" "$here/modules" > /dev/null
    echo "build-images: built $image"
  else
    podman tag "$image" "localhost/ferry-test-$name:latest"
  fi
done
