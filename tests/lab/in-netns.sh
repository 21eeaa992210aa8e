#!/usr/bin/env bash
# Runs a command in a private network namespace with only a loopback interface (up), so a
# server with fixed ports (Samba AD: 389/636/3268/3269) cannot collide with anything else
# on the machine, and nothing outside can reach it.
#
#   tests/lab/in-netns.sh CMD [ARGS...]     exit status = CMD's
#
# Needs root (unshare -n). The host's namespace id is passed on in PWRESETD_HOST_NETNS so
# tests/lab/samba.sh can tell it is not on the host even where /proc/1 is unreadable.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi
command -v unshare >/dev/null 2>&1 || {
    echo "in-netns.sh: error: unshare not found (util-linux)" >&2
    exit 1
}
command -v ip >/dev/null 2>&1 || [[ -x /usr/sbin/ip ]] || [[ -x /sbin/ip ]] || {
    echo "in-netns.sh: error: ip not found (install iproute2)" >&2
    exit 1
}

PWRESETD_HOST_NETNS=$(readlink /proc/self/ns/net)
export PWRESETD_HOST_NETNS
export PATH="${PATH}:/usr/sbin:/sbin"
# shellcheck disable=SC2016 # "$@" is expanded by the inner bash
exec unshare -n -- bash -c 'ip link set lo up && exec "$@"' in-netns "$@"
