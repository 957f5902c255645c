#!/bin/sh
# Every C file of the project is formatted as .clang-format says: fails listing the files that
# differ, with the command that fixes them. Needs clang-format (installed by `make deps`).
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
if ! command -v clang-format >/dev/null 2>&1; then
    echo "format: clang-format is not installed; run 'make deps'" >&2
    exit 1
fi
files=$(find core include plugins examples tests -name build -prune -o \( -name '*.c' -o -name '*.h' \) -print | sort)
n=0
bad=""
for f in $files; do
    n=$((n + 1))
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad="$bad $f"; fi
done
if [ -n "$bad" ]; then
    echo "format: these files differ from .clang-format:" >&2
    for f in $bad; do echo "  $f" >&2; done
    echo "fix with: clang-format -i$bad" >&2
    exit 1
fi
echo "format: $n files match .clang-format ($(clang-format --version))"
