# Run by the PostgreSQL image's entrypoint (from /docker-entrypoint-initdb.d) once, after it
# initialised an empty volume (K8sExecutor::provision_empty): the new data directory includes the
# instance's ConfigMap as a restored one does, so the server listens as configured and uses its
# pg_hba.conf (with the replication entry a physical image's backup Job needs).
printf "\n# toygres: the instance configuration\ninclude_if_exists = '/etc/toygres/postgresql.conf'\n" >>"$PGDATA/postgresql.conf"
