use super::*;

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Seals `data` pushed in pieces of `piece` bytes, as a job streams it.
fn seal_in_pieces(key: &DataKey, image: ImageId, data: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sealer = ObjectSealer::new(key, image, "db-0000.dump.zst");
    for part in data.chunks(piece.max(1)) {
        sealer.push(part, &mut out);
    }
    sealer.finish(&mut out);
    out
}

fn open_in_pieces(key: &DataKey, image: ImageId, sealed: &[u8], piece: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut opener = ObjectOpener::new(key, image, "db-0000.dump.zst");
    for part in sealed.chunks(piece.max(1)) {
        opener.push(part, &mut out)?;
    }
    opener.finish(&mut out)?;
    Ok(out)
}

#[test]
fn round_trips_every_size_and_split() {
    let (key, image) = (DataKey::generate(), ImageId::new());
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
        let data = plain(len);
        for piece in [1 << 20, 4096, CHUNK + TAG, 7] {
            if piece == 7 && len > CHUNK + 1 {
                continue; // byte-at-a-time pushes on large inputs only slow the test down
            }
            let sealed = seal_in_pieces(&key, image, &data, piece);
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "stored size of {len} bytes");
            assert_eq!(open_in_pieces(&key, image, &sealed, piece).unwrap(), data, "{len} bytes in {piece}s");
        }
    }
}

#[test]
fn hides_the_plaintext_and_never_repeats_itself() {
    let (key, image) = (DataKey::generate(), ImageId::new());
    let canary = b"canary-row-4f1d9a".repeat(1000);
    let a = seal_in_pieces(&key, image, &canary, 4096);
    let b = seal_in_pieces(&key, image, &canary, 4096);
    assert!(!a.windows(11).any(|w| w == b"canary-row-"));
    assert_ne!(a[HEADER..], b[HEADER..], "a rewritten object uses a fresh salt, so a fresh key");
}

#[test]
fn refuses_every_changed_byte_cut_or_swap() {
    let (key, image) = (DataKey::generate(), ImageId::new());
    let data = plain(2 * CHUNK + 100);
    let sealed = seal_in_pieces(&key, image, &data, 1 << 20);
    let refused =
        |bytes: &[u8]| matches!(open_in_pieces(&key, image, bytes, 1 << 20), Err(Error::ImageNotAuthentic { .. }));
    for at in [0, 9, HEADER, HEADER + CHUNK, sealed.len() / 2, sealed.len() - 1] {
        let mut changed = sealed.clone();
        changed[at] ^= 0x20;
        assert!(refused(&changed), "flipped byte at {at}");
    }
    let one_chunk = HEADER + CHUNK + TAG;
    assert!(refused(&sealed[..one_chunk]), "cut at a chunk boundary");
    assert!(refused(&sealed[..sealed.len() - 1]), "cut in the last chunk");
    assert!(refused(&sealed[..HEADER - 1]), "cut in the header");
    let mut reordered = sealed[..HEADER].to_vec();
    reordered.extend_from_slice(&sealed[one_chunk..one_chunk + CHUNK + TAG]);
    reordered.extend_from_slice(&sealed[HEADER..one_chunk]);
    reordered.extend_from_slice(&sealed[one_chunk + CHUNK + TAG..]);
    assert!(refused(&reordered), "chunks swapped");
    let mut extended = sealed.clone();
    extended.extend_from_slice(&sealed[HEADER..one_chunk]);
    assert!(refused(&extended), "a chunk appended");
    assert!(open_all(&DataKey::generate(), image, "db-0000.dump.zst", &sealed).is_err(), "another key");
    assert!(open_all(&key, ImageId::new(), "db-0000.dump.zst", &sealed).is_err(), "another image");
    assert!(open_all(&key, image, "db-0001.dump.zst", &sealed).is_err(), "another name");
    assert!(open_all(&key, image, "db-0000.dump.zst", &data).is_err(), "plaintext is not an encrypted object");
}

#[test]
fn data_keys_never_show_themselves() {
    let key = DataKey::generate();
    let hex = key.expose_hex();
    assert_eq!(format!("{key:?}"), "DataKey(***)");
    assert_eq!(DataKey::from_hex(&hex).unwrap(), key);
    assert!(DataKey::from_hex("abcd").is_err());
    let json = serde_json::to_string(&key).unwrap();
    assert_eq!(serde_json::from_str::<DataKey>(&json).unwrap(), key);
}

/// The format is exactly the `aead` crate's STREAM (`StreamBE32`, zero prefix) over the derived
/// object key: the crate's own encryptor produces the same bytes as the in-place sealer.
#[test]
fn the_format_is_aead_stream_be32() {
    use aes_gcm::aead::stream::EncryptorBE32;
    let (key, image) = (DataKey::generate(), ImageId::new());
    let data = plain(2 * CHUNK + 5);
    let sealed = seal_in_pieces(&key, image, &data, 1 << 20);
    let cipher = object_cipher(&key, &sealed[MAGIC.len()..HEADER], image, "db-0000.dump.zst");
    let mut reference = sealed[..HEADER].to_vec();
    let mut stream = EncryptorBE32::from_aead(cipher, PREFIX.as_ref().into());
    for chunk in data[..2 * CHUNK].chunks(CHUNK) {
        reference.extend_from_slice(&stream.encrypt_next(chunk).unwrap());
    }
    reference.extend_from_slice(&stream.encrypt_last(&data[2 * CHUNK..]).unwrap());
    assert_eq!(sealed, reference);
}
