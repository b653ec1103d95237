#!/usr/bin/env bash
# Install Azurite (Microsoft's Azure Storage emulator) for the remote tier's Azure Blob tests.
# Idempotent; installs into ${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}/azurite.
# Needs: Node.js >= 18 with npm (the machine's, or Debian's).
set -euo pipefail

# 3.35.0 is the newest release that runs on Debian's Node.js 20 (3.36 and later ask for Node >= 21).
VERSION=3.35.0
DEV_HOME="${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}"
PREFIX="$DEV_HOME/azurite"
BIN="$PREFIX/node_modules/.bin/azurite-blob"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-azurite: need nodejs and npm (install them, or run as root)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
    echo "setup-azurite: Node.js $(node --version) is too old; Azurite needs >= 18" >&2
    exit 1
fi

installed="$(node -p "require('$PREFIX/node_modules/azurite/package.json').version" 2>/dev/null || true)"
if [ -x "$BIN" ] && [ "$installed" = "$VERSION" ]; then
    echo "azurite $VERSION already installed: $BIN"
    exit 0
fi

mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$VERSION"
echo "azurite $(node -p "require('$PREFIX/node_modules/azurite/package.json').version") installed: $BIN"
