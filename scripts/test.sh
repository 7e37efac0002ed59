#!/usr/bin/env bash
# README command 2: installs what is missing, then builds and runs every test suite in
# three configurations: plain (-Werror, unit tests also under valgrind), ASan+UBSan,
# and TSan (the threaded replica, through the integration suites); the fault suite
# (tests/faults/, plain and ASan; its network scenarios need root); the libFuzzer targets
# for a bounded time (fuzz/, clang); then the Docker Swarm
# end-to-end test (tests/swarm/run.sh: installs docker.io and starts dockerd if needed).
#   scripts/test.sh                          everything
#   TALLY_CONFIGS="plain asan" scripts/test.sh   a subset (plain, asan, tsan, fuzz, swarm)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" test

configs=${TALLY_CONFIGS:-plain asan tsan fuzz swarm}
jobs=$(nproc)
for c in $configs; do
  case "$c" in
    plain) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=) ;;
    asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=address,undefined) ;;
    tsan) dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=thread) ;;
    fuzz) dir=build-fuzz; flags=(-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DTALLY_FUZZ=ON) ;;
    swarm)
      echo "=== swarm: end-to-end on a single-node Docker Swarm"
      bash "$root/tests/swarm/run.sh"
      continue ;;
    *) echo "test.sh: unknown configuration '$c' (plain, asan, tsan)" >&2; exit 2 ;;
  esac
  echo "=== $c: configure and build ($dir)"
  cmake -S "$root" -B "$root/$dir" -DTALLY_WERROR=ON -DBUILD_TESTING=ON "${flags[@]}" >/dev/null
  cmake --build "$root/$dir" -j "$jobs"
  echo "=== $c: tests"
  ctest --test-dir "$root/$dir" --output-on-failure --timeout 900
done
