# Restore job of a clone image, container `prepare` (the instance's PostgreSQL image). The instance's
# PVC was provisioned from the image's VolumeSnapshot (dataSource), so the data directory is already
# there, the source's as it was when the snapshot was cut: crash-consistent, the server replays its
# WAL when the StatefulSet starts it; the roles and the superuser's password hash are the source's.
# Nothing is downloaded. This refuses another major than this image's server, removes the stale
# postmaster.pid (no server ran on this new volume), has the data directory use the instance's
# configuration as a physical restore does, and writes the marker.
# Needs: PGDATA, TOYGRES_IMAGE_ID, TOYGRES_IMAGE_MAJOR, TOYGRES_MARKER, TOYGRES_CONFIG_DIR.
TOYGRES_STEP=restore-clone
: "${PGDATA:?missing}" "${TOYGRES_IMAGE_ID:?missing}" "${TOYGRES_IMAGE_MAJOR:?missing}"
: "${TOYGRES_MARKER:?missing}" "${TOYGRES_CONFIG_DIR:?missing}"

exit_if_restored
server=$(server_major)
[[ "$server" == "$TOYGRES_IMAGE_MAJOR" ]] ||
  fail "image $TOYGRES_IMAGE_ID is a clone of PostgreSQL $TOYGRES_IMAGE_MAJOR, and clones restore only onto the same major, but this image's server is PostgreSQL $server: restore it onto PostgreSQL $TOYGRES_IMAGE_MAJOR, or take a logical image to move to another major"
found=$(cat "$PGDATA/PG_VERSION" 2>/dev/null || echo missing)
[[ "$found" == "$TOYGRES_IMAGE_MAJOR" ]] ||
  fail "the volume made from the image's VolumeSnapshot holds no data directory of PostgreSQL $TOYGRES_IMAGE_MAJOR at $PGDATA (PG_VERSION: $found)"
rm -f "$PGDATA/postmaster.pid"
apply_instance_config
chmod 0700 "$PGDATA"
mark_restored "the volume was provisioned from its VolumeSnapshot; the server replays its WAL when it starts"
