#!/usr/bin/env bash
# Forge's two database roles, created by a superuser in an empty database. The postgres
# container runs this once, when it initialises its volume (/docker-entrypoint-initdb.d);
# src/python/modules/persistence/roles_test.py runs it against the test server.
#   DB_OWNER_ROLE owns the schema: the `migrate` one-shot connects as it to run DDL.
#   DB_APP_ROLE (the api and the worker) may read and write the rows of the tables the owner
#   creates, now and in later migrations, and nothing else: no DDL, no superuser.
# psql connects as POSTGRES_USER to POSTGRES_DB (with PGHOST/PGPORT if set).
set -euo pipefail

psql --no-psqlrc --set=ON_ERROR_STOP=1 --username="${POSTGRES_USER:-postgres}" \
  --dbname="$POSTGRES_DB" \
  --set=db="$POSTGRES_DB" \
  --set=owner="$DB_OWNER_ROLE" --set=owner_password="$DB_OWNER_PASSWORD" \
  --set=app="$DB_APP_ROLE" --set=app_password="$DB_APP_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app";
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
-- Every table and sequence the owner creates from now on (migrations) grants the app its rows.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app";
SQL
