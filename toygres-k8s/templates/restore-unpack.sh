# Restore job, container `load`, physical images (before restore-load.sh, which calls
# unpack_physical when the plan says the image is physical). Refuses another major than this
# image's server before anything is touched (data files are read only by the major that wrote
# them), then unpacks each archive the `fetch` container streams (read once: opened, so that only
# an encrypted image's authenticated bytes pass, decompressed, and hashed on the way) into an empty
# PGDATA as the server's user (modes 0700 and 0600: the umask of common.sh). The archive's size and
# sha256 are checked at its end: `receive` fails on a mismatch, before the data directory is
# configured or marked restored. Then the data directory includes the instance's configuration
# (listen address, port, pg_hba.conf) as a logical restore does. The server replays the WAL the
# archive holds (end of recovery) when the instance's StatefulSet starts it; the roles and password
# hashes are the source's.

# unpack_physical: the physical restore, from the plan's image_major and archives.
unpack_physical() {
  local server archive
  # The roles, the superuser's password hash included, are the source's, in the data files.
  unset TOYGRES_PASSWORD
  server=$(server_major)
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
  apply_instance_config
  chmod 0700 "$PGDATA"
  mark_restored "${#archives[@]} archive(s) unpacked; the server replays their WAL when it starts"
}
