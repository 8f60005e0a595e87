#!/usr/bin/env bash
# Make sure PostgreSQL (with PostGIS) and Redis run locally, and tcpdump is there;
# install them with apt-get when missing and we are root. Idempotent and quick when all is there.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "installing PostgreSQL"; apt_install postgresql postgresql-contrib
fi
pg_version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
if [ -z "$pg_version" ]; then
  pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  as_root pg_createcluster "$pg_version" main
fi
if [ ! -f "/usr/share/postgresql/$pg_version/extension/postgis.control" ]; then
  echo "installing PostGIS for PostgreSQL $pg_version"
  apt_install "postgresql-$pg_version-postgis-3"
fi
if ! pg_lsclusters -h | awk '$4 == "online"' | grep -q .; then
  echo "starting PostgreSQL $pg_version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing Redis"; apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/zendo.log
  for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# tcpdump: benchmarks.wire_latency times the server's answers on the loopback.
if ! command -v tcpdump >/dev/null 2>&1; then
  echo "installing tcpdump"; apt_install tcpdump
fi
