# Sourced by the scripts: installs PostgreSQL from Debian's packages when missing, starts the
# cluster with pg_ctlcluster, and makes a role that may create databases. Sets PG_PORT,
# PG_ROLE and PG_PASSWORD.

. scripts/lib/apt.sh

PG_ROLE=openhands_test
PG_PASSWORD=openhands_test
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "==> installing PostgreSQL"
  apt_install postgresql
fi
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
  echo "==> creating PostgreSQL cluster $pg_version/main"
  pg_createcluster "$pg_version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="main" {print $4}' | grep -qx online; then
  echo "==> starting PostgreSQL $pg_version"
  pg_ctlcluster "$pg_version" main start
fi
PG_PORT=$(pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="main" {print $3}')
for _ in $(seq 1 30); do
  if su postgres -c "psql -p $PG_PORT -qAtc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 1
done
su postgres -c "psql -p $PG_PORT -qAt" >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SQL
# Databases left behind by interrupted test runs.
for db in $(su postgres -c "psql -p $PG_PORT -qAtc \"select datname from pg_database where datname like 'openhands_test_%'\""); do
  su postgres -c "psql -p $PG_PORT -qAtc 'drop database if exists \"$db\" with (force)'" >/dev/null
done

