# --- toygres sealing helpers (toolbox containers, after transfer.sh) ----------------------------------
# An encrypted image stores every object, manifest.json included, sealed by toygres-seal
# (toygres_core::envelope::object: AES-256-GCM STREAM under a key derived from the image's data
# key, the image id and the object's name). The executor says so in the environment:
#   TOYGRES_ENCRYPTED       1: the image is encrypted (a key file named alone means it too)
#   TOYGRES_DATA_KEY_FILE   path of the data key (64 hex digits; the job Secret's data-key, mounted);
#                           the key itself is never in an argument, a variable or the log
#   TOYGRES_SEAL_PROGRAM    the program (default toygres-seal on PATH)
# Without them the image is plaintext and both helpers copy. Fails closed: an encrypted job whose
# key file or program is missing or unusable stops here, before it moves a byte.
: "${TOYGRES_IMAGE_ID:?missing}"
encrypted=0
case "${TOYGRES_ENCRYPTED:-}" in
  1) encrypted=1 ;;
  "" | 0) if [[ -n "${TOYGRES_DATA_KEY_FILE:-}" ]]; then encrypted=1; fi ;;
  *) fail "TOYGRES_ENCRYPTED is neither 1 nor 0; nothing was moved" ;;
esac
seal_program=${TOYGRES_SEAL_PROGRAM:-toygres-seal}
if ((encrypted)); then
  key_file=${TOYGRES_DATA_KEY_FILE:-}
  [[ -n "$key_file" ]] ||
    fail "image $TOYGRES_IMAGE_ID is encrypted but TOYGRES_DATA_KEY_FILE names no key file; nothing was moved"
  [[ -f "$key_file" && -r "$key_file" ]] ||
    fail "image $TOYGRES_IMAGE_ID is encrypted but its key file $key_file is missing or unreadable (the job Secret's data-key, mounted); nothing was moved"
  command -v "$seal_program" >/dev/null ||
    fail "image $TOYGRES_IMAGE_ID is encrypted but $seal_program is not in this container (K8sConfig::seal_program; the toolbox image must contain toygres-seal, see docs/azure-aks.md); nothing was moved"
  # The key file holds a key the program takes: sealing nothing proves it.
  "$seal_program" seal --image "$TOYGRES_IMAGE_ID" --object probe --key-file "$key_file" </dev/null >/dev/null ||
    fail "image $TOYGRES_IMAGE_ID is encrypted but $seal_program cannot use the key file $key_file; nothing was moved"
fi

# seal_stream NAME: standard input, plaintext, to standard output as object NAME is stored.
seal_stream() {
  if ((encrypted)); then
    "$seal_program" seal --image "$TOYGRES_IMAGE_ID" --object "$1" --key-file "$key_file"
  else
    cat
  fi
}

# open_stream NAME: the stored object NAME on standard input to its plaintext on standard output,
# only what was authenticated; fails on any changed, moved, cut off or foreign byte.
open_stream() {
  if ((encrypted)); then
    "$seal_program" open --image "$TOYGRES_IMAGE_ID" --object "$1" --key-file "$key_file"
  else
    cat
  fi
}
# --- end of sealing helpers ----------------------------------------------------------------------------
