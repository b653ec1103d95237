#!/usr/bin/env bash
# Prepare the Wine lab for the Windows test tier (tests/windows, `pytest -m windows`). Idempotent.
#
# Installs Debian's wine (64-bit only: no i386 architecture needed) and the mingw-w64 cross compiler,
# then builds under ${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}/wine (override: CI_CACHE_WINE_LAB):
# a dedicated WINEPREFIX, the Windows uv.exe, the embeddable Windows CPython with ci-cache (copied
# fresh from this working tree on every run) and its dependencies, and a local index of win_amd64
# wheels. See docs/windows-testing.md and scripts/wine/build_lab.py.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

DEV_HOME="${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}"
LAB="${CI_CACHE_WINE_LAB:-$DEV_HOME/wine}"

need_apt=()
[ -x /usr/lib/wine/wine64 ] && command -v wine >/dev/null || need_apt+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need_apt+=(gcc-mingw-w64-x86-64)
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup-wine: need root (or sudo) to install: ${need_apt[*]}" >&2; exit 1; }
    SUDO=(sudo -n)
  fi
  echo "setup-wine: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # An unseen package list needs an update first; retry with one if the install fails anyway.
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2 || {
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2
  }
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
exec "$PY" "$REPO/scripts/wine/build_lab.py" --lab "$LAB" --repo "$REPO"
