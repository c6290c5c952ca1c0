#!/usr/bin/env bash
# Prepares a filesystem with reflink (copy-on-write clones) for the reflink tests of
# toygres-local, idempotently, as root: an XFS filesystem with `reflink=1` in a sparse backing
# file, loop-mounted at a fixed path.
#   - installs Debian's xfsprogs when `mkfs.xfs` is missing;
#   - creates the backing file $TOYGRES_XFS_IMAGE (default /var/tmp/toygres-xfs.img) sparse, of
#     $TOYGRES_XFS_SIZE (default 8G; only its written blocks take disk space), and runs
#     `mkfs.xfs -m reflink=1` on it once (a file that already holds XFS is kept as it is);
#   - mounts it at $TOYGRES_XFS_MOUNT (default /mnt/toygres-xfs) with `mount -o loop` unless it is
#     mounted there already, and makes the mount's root traversable (0711) for the `postgres` OS
#     user, which runs PostgreSQL's server binaries;
#   - checks that a clone works (`cp --reflink=always`).
# When loop devices or mounting are impossible here (a container without them), it says so on
# stderr and exits non-zero: CI fails rather than skips the tests.
# Prints `export TOYGRES_REFLINK_DIR=<mount>` on stdout (everything else on stderr). Use:
#   eval "$(bash .ci/xfs.sh)"
# Tear down:
#   bash .ci/xfs.sh --unmount    unmounts it (the loop device goes with it); the file is kept
#   bash .ci/xfs.sh --destroy    unmounts it and deletes the backing file
set -euo pipefail
IMAGE="${TOYGRES_XFS_IMAGE:-/var/tmp/toygres-xfs.img}"
SIZE="${TOYGRES_XFS_SIZE:-8G}"
MOUNT="${TOYGRES_XFS_MOUNT:-/mnt/toygres-xfs}"
log() { echo "xfs.sh: $*" >&2; }
fail() { log "$*"; exit 1; }

[[ "$(id -u)" -eq 0 ]] || fail "must run as root (it installs xfsprogs, attaches a loop device and mounts)"

mounted() { mountpoint -q "$MOUNT" 2>/dev/null; }
# The loop device(s) backed by $IMAGE.
loops_of_image() { losetup -n -O NAME -j "$IMAGE" 2>/dev/null || true; }

case "${1:-}" in
    --unmount | --destroy)
        if mounted; then
            log "unmounting $MOUNT"
            umount "$MOUNT"
        fi
        # `mount -o loop` sets autoclear; a device left by an interrupted mount is detached here.
        for dev in $(loops_of_image); do losetup -d "$dev" || true; done
        if [[ "$1" == --destroy && -e "$IMAGE" ]]; then
            log "deleting $IMAGE"
            rm -f "$IMAGE"
        fi
        exit 0
        ;;
    "") ;;
    *) fail "unknown argument ${1}; use no argument, --unmount or --destroy" ;;
esac

if ! command -v mkfs.xfs >/dev/null 2>&1; then
    log "installing xfsprogs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends xfsprogs >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends xfsprogs >&2; }
fi

if mounted; then
    FSTYPE="$(findmnt -n -o FSTYPE --mountpoint "$MOUNT")"
    [[ "$FSTYPE" == xfs ]] || fail "$MOUNT is already a mount point, of $FSTYPE, not XFS; unmount it or set TOYGRES_XFS_MOUNT"
else
    # Loop devices: the module (built in on most kernels, so a failing modprobe is no verdict) and a
    # free device. Both fail in containers that have no /dev/loop-control.
    modprobe loop 2>/dev/null || true
    losetup -f >/dev/null 2>&1 || fail "no free loop device (losetup -f failed: $(losetup -f 2>&1 || true));" \
        "this machine cannot loop-mount a filesystem, which the reflink tests need"
    grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null || true
    grep -qw xfs /proc/filesystems || fail "the kernel has no XFS (not in /proc/filesystems, modprobe xfs failed)"

    mkdir -p "$(dirname "$IMAGE")"
    [[ -e "$IMAGE" ]] || { log "creating $IMAGE (sparse, $SIZE)"; truncate -s "$SIZE" "$IMAGE"; }
    # mkfs once: what blkid finds on the file decides, so a rerun never wipes it.
    HAS="$(blkid -p -o value -s TYPE "$IMAGE" 2>/dev/null || true)"
    case "$HAS" in
        xfs) ;;
        "")
            log "mkfs.xfs -m reflink=1 $IMAGE"
            mkfs.xfs -q -m reflink=1 "$IMAGE" >&2
            ;;
        *) fail "$IMAGE already holds a $HAS filesystem, not XFS; delete it (bash .ci/xfs.sh --destroy)" ;;
    esac
    mkdir -p "$MOUNT"
    log "mounting $IMAGE at $MOUNT"
    mount -o loop "$IMAGE" "$MOUNT" \
        || fail "mount -o loop $IMAGE $MOUNT failed: this machine cannot loop-mount a filesystem" \
            "(no loop devices, or no permission to mount), which the reflink tests need"
fi

xfs_info "$MOUNT" | grep -q 'reflink=1' \
    || fail "$MOUNT is XFS without reflink; unmount it and delete $IMAGE (bash .ci/xfs.sh --destroy), then rerun"
# The mount's root and its parents must be traversable by the server's OS user.
chmod 0711 "$MOUNT"
d="$(dirname "$MOUNT")"; while [[ "$d" != "/" ]]; do chmod a+x "$d"; d="$(dirname "$d")"; done
# A clone that shares its blocks, end to end.
probe="$(mktemp "$MOUNT/.xfs-probe.XXXXXX")"
echo toygres >"$probe"
cp --reflink=always "$probe" "$probe.clone" || { rm -f "$probe" "$probe.clone"; fail "a reflink clone failed on $MOUNT"; }
rm -f "$probe" "$probe.clone"
log "XFS with reflink at $MOUNT ($(df -h --output=size "$MOUNT" | tail -1 | tr -d ' ') from $IMAGE)"
echo "export TOYGRES_REFLINK_DIR=$MOUNT"
