#!/usr/bin/env bash
# Makes the base image debian:bookworm-slim available to docker without a registry:
# if it is not there already (and cannot be pulled), it is built from Debian's archive
# with debootstrap (minbase variant, trimmed of docs and apt lists like the official
# slim image) and loaded with `docker import`.
#   scripts/docker-base-image.sh [image]        (default debian:bookworm-slim)
# MIRROR overrides the Debian mirror (default http://deb.debian.org/debian).
set -euo pipefail
image=${1:-debian:bookworm-slim}
mirror=${MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "docker-base-image.sh: $image is present"
  exit 0
fi
if timeout 60 docker pull "$image" >/dev/null 2>&1; then
  echo "docker-base-image.sh: pulled $image"
  exit 0
fi
"$(dirname "$0")/install-deps.sh" docker
root=$(mktemp -d /tmp/tally-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "docker-base-image.sh: building $image from $mirror (debootstrap bookworm, minbase)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# What the slim image leaves out, and apt set up for images.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"
printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n' \
  >"$root/etc/dpkg/dpkg.cfg.d/docker-slim"
printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "docker-base-image.sh: imported $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
