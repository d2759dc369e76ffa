# Sourced by the scripts that need CI-only tools (promtool, Prometheus, Alertmanager, Caddy,
# Chromium): never by `make run` or `make test`.
#
#   debian_install WHO PACKAGE...
#
# installs the Debian packages with apt-get, as root or through sudo, and fails with a message
# naming them when apt-get is not there. DEBIAN_SUDO is then "sudo" or empty, for the caller's
# own commands as root (stopping the services a package starts, say).

DEBIAN_SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    DEBIAN_SUDO="sudo"
fi

debian_install() {
    local who=$1
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: $* missing and apt-get is not available; install them and run again" >&2
        return 1
    fi
    echo "$who: installing $* (Debian packages)"
    # Each step returns on failure itself: the caller's `set -e` may not apply in a function.
    $DEBIAN_SUDO apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive $DEBIAN_SUDO apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null || return 1
}
