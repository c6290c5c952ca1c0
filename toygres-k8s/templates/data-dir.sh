# --- data directory helpers (the restore jobs' PostgreSQL containers, after common.sh) -------------
# For a data directory that came whole from another instance (a physical image's tar, a clone's
# VolumeSnapshot): have it use this instance's configuration, and mark the volume restored.
# Needs: PGDATA, TOYGRES_IMAGE_ID, TOYGRES_MARKER, TOYGRES_CONFIG_DIR.

# server_major: the major of this image's server (`16` of `postgres (PostgreSQL) 16.4`).
server_major() { postgres -V | sed -E 's/^postgres \(PostgreSQL\) ([0-9]+).*/\1/'; }

# apply_instance_config: has PGDATA include the instance's configuration (listen address, port,
# pg_hba.conf, TLS, password encryption) as a logical restore does, and drops the source's ALTER
# SYSTEM settings of those.
apply_instance_config() {
  local conf include
  # Appended, so it wins over the source's own postgresql.conf; the source's inclusion (an image of
  # a restored instance has one) is dropped rather than repeated.
  conf="$PGDATA/postgresql.conf"
  include=$(printf "include_if_exists = '%s/postgresql.conf'" "$TOYGRES_CONFIG_DIR")
  [[ -f "$conf" ]] || fail "the image's data directory has no postgresql.conf"
  grep -vxF -e "$include" -e '# toygres: the instance configuration' "$conf" >"$conf.tmp" || [[ $? == 1 ]]
  printf '%s\n%s\n' '# toygres: the instance configuration' "$include" >>"$conf.tmp"
  mv "$conf.tmp" "$conf"
  # postgresql.auto.conf (the source's ALTER SYSTEM) is read last: it keeps every setting but those
  # the instance's configuration owns (where the server listens, its pg_hba.conf, its TLS and
  # password encryption: a source's `ssl = off` must not turn the instance's TLS off).
  local auto="$PGDATA/postgresql.auto.conf"
  local owned='^[[:space:]]*(listen_addresses|port|hba_file|ssl|ssl_[a-z_]+|password_encryption)[[:space:]]*='
  if [[ -f "$auto" ]] && grep -qE "$owned" "$auto"; then
    log "dropping the source's ALTER SYSTEM settings the instance configures: $(grep -oE "$owned" "$auto" | tr -d ' =' | paste -sd' ')"
    grep -vE "$owned" "$auto" >"$auto.tmp" || [[ $? == 1 ]]
    mv "$auto.tmp" "$auto"
  fi
}

# mark_restored WHAT: flushes the volume, then writes the marker a retried job finds.
mark_restored() {
  sync
  printf '%s' "$TOYGRES_IMAGE_ID" >"$TOYGRES_MARKER"
  sync
  log "image $TOYGRES_IMAGE_ID restored: $1"
}
# --- end of data directory helpers -------------------------------------------------------------------
