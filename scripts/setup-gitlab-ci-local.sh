#!/usr/bin/env bash
# Install gitlab-ci-local (runs GitLab pipelines locally) for the GitLab wrapper's end-to-end test.
# Idempotent; installs into ${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}/gitlab-ci-local.
# Needs: Node.js >= 18 with npm (the machine's, or Debian's), rsync (Debian), git.
set -euo pipefail

VERSION=4.73.0
DEV_HOME="${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}"
PREFIX="$DEV_HOME/gitlab-ci-local"
BIN="$PREFIX/node_modules/.bin/gitlab-ci-local"

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup-gitlab-ci-local: need $* (install them, or run as root)" >&2
        exit 1
    fi
    if [ -z "${_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v rsync >/dev/null || missing+=(rsync)
command -v git >/dev/null || missing+=(git)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
    echo "setup-gitlab-ci-local: Node.js $(node --version) is too old; gitlab-ci-local needs >= 18" >&2
    exit 1
fi

if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$VERSION" ]; then
    echo "gitlab-ci-local $VERSION already installed: $BIN"
    exit 0
fi

mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "gitlab-ci-local@$VERSION"
echo "gitlab-ci-local $("$BIN" --version) installed: $BIN"
