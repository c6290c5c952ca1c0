# Restore job, container `load`, physical images (before restore-load.sh, which calls
# unpack_physical when the verified plan says the image is physical). Refuses another major than
# this image's server before anything is touched (data files are read only by the major that wrote
# them), then unpacks each archive the `fetch` container streams (verified, opened, decompressed) into an
# empty PGDATA as the server's user (modes 0700 and 0600: the umask of common.sh), and has the data
# directory include the instance's configuration (listen address, port, pg_hba.conf) as a logical
# restore does. The server replays the WAL the archive holds (end of recovery) when the
# instance's StatefulSet starts it; the roles and password hashes are the source's.

# unpack_physical: the physical restore, from the plan's image_major and archives.
unpack_physical() {
  local server conf include archive
  # The roles, the superuser's password hash included, are the source's, in the data files.
  unset TOYGRES_PASSWORD
  server=$(postgres -V | sed -E 's/^postgres \(PostgreSQL\) ([0-9]+).*/\1/')
  [[ "$server" == "$image_major" ]] ||
    fail "image $TOYGRES_IMAGE_ID is a physical image of PostgreSQL $image_major, and physical images restore only onto the same major, but this image's server is PostgreSQL $server: restore it onto PostgreSQL $image_major, or take a logical image to move to another major"
  ((${#archives[@]} > 0)) || fail "the plan of image $TOYGRES_IMAGE_ID lists no archive"
  rm -rf "$PGDATA"
  mkdir -m 0700 "$PGDATA"
  for archive in "${archives[@]}"; do
    log "unpacking $archive into $PGDATA"
    receive "$archive" tar -x -f - -C "$PGDATA"
  done
  [[ "$(cat "$PGDATA/PG_VERSION" 2>/dev/null)" == "$image_major" ]] ||
    fail "the unpacked data directory is not one of PostgreSQL $image_major (PG_VERSION: $(cat "$PGDATA/PG_VERSION" 2>/dev/null || echo missing))"
  # Appended, so it wins over the source's own postgresql.conf; the source's inclusion (an image of
  # a restored instance has one) is dropped rather than repeated.
  conf="$PGDATA/postgresql.conf"
  include=$(printf "include_if_exists = '%s/postgresql.conf'" "$TOYGRES_CONFIG_DIR")
  [[ -f "$conf" ]] || fail "the image's data directory has no postgresql.conf"
  grep -vxF -e "$include" -e '# toygres: the instance configuration' "$conf" >"$conf.tmp" || [[ $? == 1 ]]
  printf '%s\n%s\n' '# toygres: the instance configuration' "$include" >>"$conf.tmp"
  mv "$conf.tmp" "$conf"
  # postgresql.auto.conf (the source's ALTER SYSTEM) is read last: it keeps every setting but those
  # the instance's configuration owns (where the server listens, its pg_hba.conf).
  local auto="$PGDATA/postgresql.auto.conf" owned='^[[:space:]]*(listen_addresses|port|hba_file)[[:space:]]*='
  if [[ -f "$auto" ]] && grep -qE "$owned" "$auto"; then
    log "dropping the source's ALTER SYSTEM settings the instance configures: $(grep -oE "$owned" "$auto" | tr -d ' =' | paste -sd' ')"
    grep -vE "$owned" "$auto" >"$auto.tmp" || [[ $? == 1 ]]
    mv "$auto.tmp" "$auto"
  fi
  chmod 0700 "$PGDATA"
  mark_restored "${#archives[@]} archive(s) unpacked; the server replays their WAL when it starts"
}
