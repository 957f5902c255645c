#!/bin/bash
# tests/workflows/sync_fs.sh — runs sync_fs.lua (tallow.fs) with `tallow run` on a scratch folder.
. "$(dirname "$0")/sync_lib.sh"
"$T" run "$(dirname "$0")/sync_fs.lua" "$TMP/root" "$TMP/outside" || fail "tallow.fs checks"
