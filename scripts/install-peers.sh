#!/usr/bin/env bash
# Installs the peer programs that berth's interop tests and benchmarks run
# against (Debian packages): podman, skopeo, buildah, docker-registry
# (distribution), busybox-static, curl, jq, wrk, ab (apache2-utils),
# newuidmap (uidmap), runc (the OCI runtime berth's containers run under) and gpg
# (the signature tests make and use OpenPGP keys), debootstrap (berth-inventory's
# tests build a real Debian root file system with it), rpm and rpmbuild (the
# rpm inventory tests build packages and install them into an rpmdb.sqlite),
# python3-rpm (rpm's version comparison as a reference) and db5.3-util (db5.3_load
# writes a BerkeleyDB Packages file as RHEL 7/8's rpm does), chromium and
# chromium-driver (the web pages' browser tests, crates/berth/tests/ui_browser.rs,
# drive Debian's headless Chromium) and a Java runtime (the Nu HTML checker, vnu.jar,
# checks every page), PostgreSQL (berth-store's PostgreSQL metadata tests start a
# throw-away cluster of it, crates/berth-testenv). Then s3s-fs, the S3 server the
# object-storage tests run (from the Rust package registry, `cargo install`; 0.14.1
# is the newest that builds with Rust 1.95; about 2-6 minutes once, then kept in
# ~/.cargo/bin). Then the browser tests' npm packages (crates/berth/tests/ui:
# playwright-core, axe-core, vnu-jar, exact versions from its package-lock.json) with
# `npm ci` when node_modules is missing or older than the lock file; node and npm
# must be on PATH.
# Does nothing for what is already installed.
# Also makes sure /etc/containers/policy.json exists.
#
# Usage: scripts/install-peers.sh   (as root when something is missing)
set -euo pipefail

# command -> Debian package
declare -A package_of=(
  [podman]=podman
  [skopeo]=skopeo
  [buildah]=buildah
  [docker-registry]=docker-registry
  [busybox]=busybox-static
  [curl]=curl
  [jq]=jq
  [wrk]=wrk
  [ab]=apache2-utils
  [newuidmap]=uidmap
  [runc]=runc
  [gpg]=gpg
  [debootstrap]=debootstrap
  [rpm]=rpm
  [rpmbuild]=rpm
  [python3-rpm]=python3-rpm
  [db5.3_load]=db5.3-util
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [java]=default-jre-headless
  [postgres]=postgresql
  [seccomp.json]=golang-github-containers-common
)
commands=(podman skopeo buildah docker-registry busybox curl jq wrk ab newuidmap runc gpg debootstrap rpm rpmbuild python3-rpm db5.3_load chromium chromedriver java postgres seccomp.json)

have() {
  if [[ $1 == busybox ]]; then
    # The tests copy /bin/busybox into images.
    [[ -x /bin/busybox ]]
  elif [[ $1 == postgres ]]; then
    # Debian keeps the server out of PATH.
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
  elif [[ $1 == seccomp.json ]]; then
    # podman's system-call filter, which berth's containers take too.
    [[ -f /usr/share/containers/seccomp.json ]]
  elif [[ $1 == python3-rpm ]]; then
    # A Python module, for Debian's own python3 (not one from PATH's pyenv or venv).
    /usr/bin/python3 -c 'import rpm' >/dev/null 2>&1
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

missing_packages=()
for cmd in "${commands[@]}"; do
  if ! have "$cmd"; then
    missing_packages+=("${package_of[$cmd]}")
  fi
done

is_root() { [[ $(id -u) -eq 0 ]]; }

if ((${#missing_packages[@]} > 0)); then
  if ! is_root; then
    echo "install-peers: missing packages: ${missing_packages[*]}" >&2
    echo "install-peers: run as root, or: sudo apt-get install -y ${missing_packages[*]}" >&2
    exit 1
  fi
  echo "install-peers: installing ${missing_packages[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing_packages[@]}"
  for cmd in "${commands[@]}"; do
    if ! have "$cmd"; then
      echo "install-peers: $cmd still missing after installing ${package_of[$cmd]}" >&2
      exit 1
    fi
  done
fi

# containers-common normally ships this file (package
# golang-github-containers-common); podman/buildah refuse to pull or push
# without a policy.
policy=/etc/containers/policy.json
if [[ ! -e $policy ]]; then
  if ! is_root; then
    echo "install-peers: $policy is missing; create it as root with" >&2
    echo '  {"default":[{"type":"insecureAcceptAnything"}]}' >&2
    exit 1
  fi
  mkdir -p /etc/containers
  printf '%s\n' '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
  echo "install-peers: wrote $policy"
fi

# s3s-fs, pinned: its API and flags are what crates/berth-testenv starts.
S3S_FS_VERSION=0.14.1
s3s_fs=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
if [[ ! -x $s3s_fs ]] || ! "$s3s_fs" --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
  echo "install-peers: cargo install --locked s3s-fs@$S3S_FS_VERSION --features binary"
  if ! cargo install --locked "s3s-fs@$S3S_FS_VERSION" --features binary; then
    echo "install-peers: installing s3s-fs failed (it needs crates.io on first run)" >&2
    exit 1
  fi
fi

# The browser tests' npm packages, exactly as the lock file pins them.
ui_dir=$(cd "$(dirname "$0")/.." && pwd)/crates/berth/tests/ui
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-peers: $tool is missing: the browser tests need Node.js 18 or later with npm" >&2
    echo "install-peers: install it, e.g. apt-get install -y nodejs npm" >&2
    exit 1
  fi
done
if [[ ! -d $ui_dir/node_modules || $ui_dir/package-lock.json -nt $ui_dir/node_modules ]]; then
  echo "install-peers: npm ci in $ui_dir"
  # --ignore-scripts: none of the three needs one, and vnu-jar's postinstall would
  # fetch a JDK from GitHub when it finds no java (the apt package above is the one).
  if ! (cd "$ui_dir" && npm ci --no-audit --no-fund --ignore-scripts); then
    echo "install-peers: npm ci failed in $ui_dir (it needs the npm registry on first run)" >&2
    exit 1
  fi
  touch "$ui_dir/node_modules"
fi
for file in playwright-core/index.mjs axe-core/axe.min.js vnu-jar/build/dist/vnu.jar; do
  if [[ ! -f $ui_dir/node_modules/$file ]]; then
    echo "install-peers: $ui_dir/node_modules/$file is missing after npm ci" >&2
    exit 1
  fi
done

echo "install-peers: ok ($(podman --version), $(skopeo --version), $(buildah --version | cut -d' ' -f1-3), docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}'), $(chromium --version 2>/dev/null | cut -d' ' -f1-2), node $(node --version))"
