#!/bin/sh
# Installs the Debian packages tallow builds and tests with, or the ones named as arguments
# (tests/bench/run.sh names the benchmark's); only what is missing.
set -e
PKGS="$*"
[ -n "$PKGS" ] || PKGS="build-essential cmake pkg-config libltdl-dev libsodium-dev libngtcp2-dev
libngtcp2-crypto-gnutls-dev libgnutls28-dev liblua5.4-dev lua5.4 libcmocka-dev
clang clang-format libclang-rt-14-dev coturn tcpdump iptables iproute2 microsocks xvfb xclip valgrind procps time
libjansson-dev libzip-dev magic-wormhole python3-magic-wormhole-mailbox-server
magic-wormhole-transit-relay wormhole-william prometheus dnsmasq-base libnetfilter-queue-dev
iperf3 iputils-ping systemd python3-cryptography libminiupnpc-dev libnatpmp-dev miniupnpd
miniupnpd-iptables miniupnpc natpmpc openssl
openssh-server openssh-client rsync"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages:$missing (run 'make deps', or 'make bench', as root)" >&2
        exit 1
    fi
    echo "deps: installing$missing"
    apt-get update -qq || true
    # miniupnpd (a test gateway for gather-portmap) asks debconf whether to start a system
    # daemon: it must not (the tests run their own in namespaces); naming miniupnpd-iptables picks
    # the legacy-iptables build the tests set up chains for
    echo "miniupnpd miniupnpd/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
    # prometheus is here for its promtool (tests/relayops): without its recommended node exporter,
    # and its server is not wanted running
    rest=$(echo "$missing" | tr ' ' '\n' | grep -vx prometheus | tr '\n' ' ')
    [ -z "${rest# }" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $rest
    case " $missing " in *" prometheus "*)
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
        command -v systemctl >/dev/null 2>&1 && systemctl disable --now prometheus >/dev/null 2>&1 || true ;;
    esac
fi
