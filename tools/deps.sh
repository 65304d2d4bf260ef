#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install the Debian packages Ghost needs to build, test and benchmark.
# Idempotent: does nothing when everything is already there.
set -eu
pkgs="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libcmocka-dev libxxhash-dev
      libsodium-dev libssl-dev iproute2 python3 procps util-linux libcap2-bin netpipe-tcp"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
