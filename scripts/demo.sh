#!/usr/bin/env bash
# make demo: a single-node gitorc cluster that deploys examples/ from a
# local Git repository, shows a broken revision being refused, a fix being
# deployed, a removal being pruned, and then tears everything down.
# Needs root (containers, mounts); `make demo` installs the packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (it runs containers)" >&2; exit 1; }

gitorc=$PWD/bin/gitorc
work=$(mktemp -d /tmp/gitorc-demo.XXXXXX)
export GITORC_SOCKET=$work/node/gitorc.sock
daemon_pid= registry_pid=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    # The node leaves: its tasks stop, its network plane (links, routes,
    # the nftables table) goes, and the daemon ends.
    timeout 180 "$gitorc" leave --force >/dev/null 2>&1
    for _ in $(seq 30); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 1; done
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  # A daemon that died early leaves shims and their containers behind.
  for shim in $(pgrep -f -- "-address $work/"); do
    pkill -KILL -P "$shim" 2>/dev/null
    kill -KILL "$shim" 2>/dev/null
  done
  grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "timed out after ${secs}s waiting for $what" >&2
  "$gitorc" status >&2 || true
  tail -n 30 "$work/node.log" >&2
  return 1
}
phase() { "$gitorc" status -o json | grep -q "\"phase\": *\"$1\""; }
commit() { git -C "$work/repo" add -A && git -C "$work/repo" -c user.name=demo -c user.email=demo@localhost commit -qm "$1"; }

say "A loopback registry with the example image (busybox, built locally)"
go build -o "$work/testenv" ./e2e/testenv
"$work/testenv" -dir "$work/registry" -addr-file "$work/registry.addr" > "$work/registry.log" 2>&1 &
registry_pid=$!
wait_for "the registry" 60 test -s "$work/registry.addr"
registry=$(cat "$work/registry.addr")
echo "registry at $registry"

say "A Git repository holding the example stacks"
mkdir -p "$work/repo"
cp -r examples/web examples/shop "$work/repo/"
for s in web shop; do echo "REGISTRY=$registry" > "$work/repo/$s/.env"; done
git -C "$work/repo" init -q -b main
commit "example stacks"
git -C "$work/repo" log --oneline

say "gitorc bootstrap --repo $work/repo: one manager and worker on this host"
"$gitorc" bootstrap --data-dir "$work/node" --listen 127.0.0.1:4270 --insecure-registry "$registry" \
  --repo "$work/repo" --interval 2s > "$work/node.log" 2>&1 &
daemon_pid=$!
wait_for "the node" 60 "$gitorc" status

say "The first revision is refused: shop's secret is sealed for another cluster"
wait_for "the first sync" 60 phase failed
"$gitorc" status

say "Seal the secret for this cluster (gitorc seal) and push"
echo -n "demo-password" | "$gitorc" seal --recipient "$(cat "$work/node/recipient.txt")" -o "$work/repo/shop/db_password.age"
commit "shop: seal db_password for this cluster"
wait_for "the fixed revision to roll out healthy" 180 phase synced
"$gitorc" status
"$gitorc" service ls
"$gitorc" ps shop

say "The routing mesh: port 8080 answers on every node, 127.0.0.1 included"
wait_for "port 8080" 30 curl -fsS -m 2 -o /dev/null http://127.0.0.1:8080/
echo "\$ curl http://127.0.0.1:8080/"
curl -fsS -m 2 http://127.0.0.1:8080/

say "Services reach each other by name over the overlay: a frontend task asks http://api:9000/"
front=$("$gitorc" ps shop_frontend -q | head -n 1)
echo "\$ wget -qO- http://api:9000/status.json   (in task $front)"
ctr --address "$work/node/executor/containerd/containerd.sock" --namespace gitorc \
  task exec --exec-id "demo-$$" "$front" sh -c 'timeout 5 wget -qO- http://api:9000/status.json'
"$gitorc" network ls

say "Push a new page: a rolling update while requests keep coming"
sed -i 's|<p>Deployed by gitorc from Git.</p>|<p>Deployed by gitorc from Git, version 2.</p>|' "$work/repo/web/index.html"
sed -i 's|PAGE_VERSION: "1"|PAGE_VERSION: "2"|' "$work/repo/web/compose.yaml"
commit "web: version 2 of the page"
rev=$(git -C "$work/repo" rev-parse HEAD)
ok=0 failed=0 updated=
for _ in $(seq 1200); do   # at most 1,200 requests, 2 s each at worst
  if page=$(curl -fsS -m 2 http://127.0.0.1:8080/ 2>/dev/null); then ok=$((ok + 1)); else failed=$((failed + 1)); fi
  if [[ $page == *"version 2"* ]] && phase synced && "$gitorc" status -o json | grep -q "\"revision\": *\"$rev\""; then
    updated=1; break
  fi
  sleep 0.05
done
echo "$((ok + failed)) requests during the update: $ok answered, $failed failed"
echo "\$ curl http://127.0.0.1:8080/"
curl -fsS -m 2 http://127.0.0.1:8080/
[ -n "$updated" ] || { echo "the update did not finish" >&2; "$gitorc" ps web >&2; exit 1; }
[ "$failed" = 0 ] || { echo "requests failed during the update" >&2; exit 1; }

say "Remove the web stack from Git: gitorc prunes it"
git -C "$work/repo" rm -rq web
commit "remove web"
wait_for "web to be pruned" 120 bash -c "! '$gitorc' service ls | grep -q web_web && '$gitorc' status -o json | grep -q '\"phase\": *\"synced\"'"
"$gitorc" service ls
"$gitorc" status

say "Done: tearing the cluster down"
