#!/usr/bin/env bash
# examples/tallow-relay.service (issue 16): `systemd-analyze verify` accepts it without a single
# warning, with ExecStart pointed at the built program (verify checks that it exists); its
# sandboxing is what the issue asks for (DynamicUser, ProtectSystem=strict, NoNewPrivileges, no
# capability unless uncommented for a port below 1024), and `systemd-analyze security` rates its
# exposure low. Works without systemd running (a container or a debootstrap root): both are
# offline checks. systemd-analyze comes from the Debian package systemd (scripts/deps.sh).
set -eu
. "$(dirname "$0")/lib.sh"
: "${TALLOW_SOURCE_DIR:?}"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (make deps installs the package systemd)"
U=$TALLOW_SOURCE_DIR/examples/tallow-relay.service
unit=$E2E_TMP/tallow-relay.service
sed "s|^ExecStart=/usr/local/bin/tallow |ExecStart=$T |" "$U" >"$unit"
grep -q "^ExecStart=$T relay " "$unit" || fail "ExecStart is not /usr/local/bin/tallow relay ..."
rc=0; systemd-analyze verify --man=no "$unit" >"$E2E_TMP/verify.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$E2E_TMP/verify.out" ] || { show "$E2E_TMP/verify.out"; fail "systemd-analyze verify: exit $rc or warnings"; }
# a broken copy must fail the same check (so the check above can fail)
sed 's/^ProtectSystem=strict/ProtectSystem=strictest/' "$unit" >"$E2E_TMP/broken.service"
systemd-analyze verify --man=no "$E2E_TMP/broken.service" >"$E2E_TMP/broken.out" 2>&1 || true
[ -s "$E2E_TMP/broken.out" ] || fail "a broken unit passes the check: the check proves nothing"
for k in "DynamicUser=yes" "ProtectSystem=strict" "NoNewPrivileges=yes" "CapabilityBoundingSet=$" \
         "AmbientCapabilities=$" "#CapabilityBoundingSet=CAP_NET_BIND_SERVICE" "#AmbientCapabilities=CAP_NET_BIND_SERVICE"; do
    grep -q "^$k" "$U" || fail "the unit lacks $k"
done
exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | grep -o "Overall exposure level for [^:]*: [0-9.]*" | grep -o "[0-9.]*$")
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
awk "BEGIN { exit !($exposure <= 2.0) }" || fail "exposure level $exposure (above 2.0)"
# the relay command line in the unit is one the program accepts
"$T" relay --listen "[::]:4433" --quiet --help >/dev/null || fail "the unit's relay options are not accepted"
ok "verify: no warnings; sandboxed; exposure $exposure (systemd-analyze security, 0 = best, 10 = worst)"
