//! The export's tar of a clone's data directory: what a physical restore unpacks, exactly the
//! listed tree, and refused when a file differs from the clone's manifest.

use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use toygres_core::manifest::{sha256_hex, CloneKind, ClonedFile};

/// A small data directory and the clone manifest listing it.
fn sample() -> (tempfile::TempDir, ManifestClone) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("base/1")).unwrap();
    fs::create_dir(root.join("global")).unwrap();
    let files: [(&str, Vec<u8>, u32); 3] = [
        ("PG_VERSION", b"15\n".to_vec(), 0o600),
        ("base/1/1259", (0..3_000_000u32).map(|i| (i % 251) as u8).collect(), 0o600),
        ("global/pg_control", vec![9u8; 8192], 0o640),
    ];
    let mut listed = Vec::new();
    for (path, body, mode) in files {
        fs::write(root.join(path), &body).unwrap();
        fs::set_permissions(root.join(path), fs::Permissions::from_mode(mode)).unwrap();
        listed.push(ClonedFile { path: path.into(), size: body.len() as u64, mode, sha256: sha256_hex(&body) });
    }
    let dirs = ["", "base", "base/1", "global"].map(String::from).to_vec();
    let size = listed.iter().map(|f| f.size).sum();
    (dir, ManifestClone { kind: CloneKind::Reflink, name: "x".into(), size, files: listed, dirs })
}

fn tar_of(root: &Path, clone: &ManifestClone, image: ImageId) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_tar(root, clone, image, &mut out)?;
    Ok(out)
}

#[test]
fn the_tar_unpacks_to_exactly_the_listed_tree() {
    let (dir, clone) = sample();
    fs::write(dir.path().join("planted"), b"not in the manifest").unwrap();
    let image = ImageId::new();
    let tar = tar_of(dir.path(), &clone, image).unwrap();
    assert_eq!(tar.len() as u64, tar_size(&clone), "progress's total is the tar's size");

    let target = tempfile::tempdir().unwrap();
    let unpacked = super::super::untar::unpack(&tar[..], target.path(), image).unwrap();
    assert_eq!(unpacked, clone.size);
    for file in &clone.files {
        let path = target.path().join(&file.path);
        assert_eq!(sha256_hex(&fs::read(&path).unwrap()), file.sha256, "{}", file.path);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, file.mode, "{}", file.path);
    }
    assert!(!target.path().join("planted").exists(), "only what the manifest lists is exported");
}

#[test]
fn a_changed_byte_is_a_checksum_mismatch_naming_the_file() {
    let (dir, clone) = sample();
    let path = dir.path().join("base/1/1259");
    let mut body = fs::read(&path).unwrap();
    body[1_234_567] ^= 1;
    fs::write(&path, body).unwrap();
    let image = ImageId::new();
    match tar_of(dir.path(), &clone, image) {
        Err(Error::ChecksumMismatch { image: i, object, .. }) => {
            assert_eq!((i, object.as_str()), (image, "clone file base/1/1259"))
        }
        other => panic!("expected a checksum mismatch, got {:?}", other.map(|t| t.len())),
    }
}

#[test]
fn a_missing_resized_or_linked_file_is_refused() {
    let image = ImageId::new();
    let (dir, clone) = sample();
    fs::write(dir.path().join("PG_VERSION"), b"15.1\n").unwrap();
    let err = tar_of(dir.path(), &clone, image).unwrap_err();
    assert!(matches!(&err, Error::ImageIncomplete { .. }) && err.to_string().contains("PG_VERSION"), "{err}");

    let (dir, clone) = sample();
    fs::remove_file(dir.path().join("global/pg_control")).unwrap();
    let err = tar_of(dir.path(), &clone, image).unwrap_err();
    assert!(matches!(&err, Error::ImageIncomplete { .. }) && err.to_string().contains("pg_control"), "{err}");

    let (dir, clone) = sample();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"15\n").unwrap();
    fs::remove_file(dir.path().join("PG_VERSION")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("PG_VERSION")).unwrap();
    let err = tar_of(dir.path(), &clone, image).unwrap_err();
    assert!(matches!(&err, Error::ImageIncomplete { .. }), "a link is never followed: {err}");
}
