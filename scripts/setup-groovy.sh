#!/usr/bin/env bash
# Installs Groovy (Debian's package, 2.4.x) and a JDK for the Jenkins shared library tests
# (tests/integration/test_jenkins_library.py runs tests/jenkins/harness.groovy). Idempotent.
set -euo pipefail

have_groovy() {
    command -v groovy >/dev/null 2>&1 && command -v java >/dev/null 2>&1
}

if ! have_groovy; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-groovy: groovy is missing and this is not root; run: sudo apt-get install -y groovy" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Other setup scripts may run apt at the same time: wait for the dpkg lock instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=900 -y -q)
    if ! apt-cache show groovy >/dev/null 2>&1; then
        apt-get "${apt_opts[@]}" update
    fi
    packages=(groovy)
    command -v java >/dev/null 2>&1 || packages+=(default-jre-headless)
    apt-get "${apt_opts[@]}" install --no-install-recommends "${packages[@]}" \
        || { apt-get "${apt_opts[@]}" update && apt-get "${apt_opts[@]}" install --no-install-recommends "${packages[@]}"; }
fi

# Groovy's start script needs JAVA_HOME; derive it from the java on PATH.
JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
export JAVA_HOME
groovy --version
