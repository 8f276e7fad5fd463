#!/usr/bin/env bash
# The Debian packages the tests use, installed when missing (as root, with apt);
# elsewhere named, with the command that installs them.
#   chromium       the report read back in a real browser (tests/host/test_report_*)
#   postgresql     a throwaway server for the clinic store (tools/pgserver.py)
#   gnome-keyring  a real Secret Service keyring for keys at rest (tests/cli/test_keys_at_rest.py)
#   dbus           the session bus that keyring runs on
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null \
    || need+=(postgresql)
command -v gnome-keyring-daemon >/dev/null 2>&1 || need+=(gnome-keyring)
command -v dbus-run-session >/dev/null 2>&1 || need+=(dbus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} for the tests (first run only)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "the tests need these Debian packages: ${need[*]}" >&2
    echo "install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
