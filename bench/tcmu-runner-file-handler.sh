#!/usr/bin/env bash
# Build tcmu-runner's own file handler (file_example.c, subtype "file") for Debian's
# tcmu-runner, which does not ship it, so that the TCMU benchmarks compare lioctl's handler
# with tcmu-runner's file handler on every medium (its qcow handler refuses block devices).
#
#   bench/tcmu-runner-file-handler.sh SRC OUT
#
# SRC: a checkout of https://github.com/open-iscsi/tcmu-runner at the tag of the installed
# tcmu-runner (bookworm: v1.5.4; the handler ABI is tcmu-runner's internal one); OUT: a
# directory (visible in the guest: not /tmp or /var/tmp, which it mounts afresh) that receives handler_file.so beside links to
# the installed handlers. Then: BENCH_RUNNER_HANDLERS=OUT for bench/tcmu_bench.py, which
# starts tcmu-runner with --handler-path OUT.
set -euo pipefail
src=$(realpath "$1") out=$2
installed=$(dpkg-query -W -f '${Version}' tcmu-runner | sed 's/-.*//')
if [[ -d $src/.git ]]; then
    tag=$(git -C "$src" describe --tags --exact-match 2>/dev/null || true)
    [[ $tag == "v$installed" ]] || { echo "$src is at ${tag:-no tag}, the installed tcmu-runner is $installed" >&2; exit 2; }
fi
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r "$src"/. "$build"
sed "s/@VERSION@/$installed/" "$build/version.h.in" > "$build/version.h"
mkdir -p "$out"
gcc -shared -fPIC -O2 -I"$build" -I"$build/ccan" -o "$out/handler_file.so" "$build/file_example.c"
for h in /usr/lib/x86_64-linux-gnu/tcmu-runner/*.so; do ln -sf "$h" "$out/"; done
echo "$out: handler_file.so (tcmu-runner $installed's file_example.c) and the installed handlers"
