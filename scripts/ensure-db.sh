#!/usr/bin/env bash
# Create database $1 (owned by the current user, who gets a superuser role so
# that migrations can create the PostGIS extension) if it does not exist.
set -euo pipefail
db="$1"
psql_admin() {
  if psql -d postgres -Atqc 'select 1' >/dev/null 2>&1; then psql -d postgres "$@"
  elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql -d postgres "$@"
  else sudo -u postgres psql -d postgres "$@"; fi
}
me=$(id -un)
if ! psql_admin -Atqc "select 1 from pg_roles where rolname='$me'" | grep -q 1; then
  psql_admin -qc "create role \"$me\" superuser login"
fi
if ! psql_admin -Atqc "select 1 from pg_database where datname='$db'" | grep -q 1; then
  psql_admin -qc "create database \"$db\" owner \"$me\""
fi
