#!/usr/bin/env bash
# Installs the system packages gitorc needs, when they are missing.
# Run as root on Debian; without root it only reports what is missing.
set -euo pipefail

# package → a file that proves it is installed
declare -A probe=(
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [docker-registry]=/usr/bin/docker-registry
  [nftables]=/usr/sbin/nft
  [iproute2]=/usr/sbin/ip
  [git]=/usr/bin/git
  [busybox-static]=/bin/busybox
  [curl]=/usr/bin/curl
  [tcpdump]=/usr/bin/tcpdump
  [iperf3]=/usr/bin/iperf3
  [chromium]=/usr/bin/chromium
)

missing=()
for pkg in "${!probe[@]}"; do
  [ -e "${probe[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing packages (install as root): ${missing[*]}" >&2
  exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged daemons; gitorc runs its own instances.
for svc in docker-registry; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
