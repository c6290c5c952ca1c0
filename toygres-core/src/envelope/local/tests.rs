use super::*;
use std::os::unix::fs::PermissionsExt;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("toygres-keys-{tag}-{}-{}", std::process::id(), rand::random::<u32>()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn wraps_bound_to_image_and_key_and_rotates() {
    let dir = temp_dir("rotate");
    let keys = LocalKeys::open_or_create(&dir).unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let first = keys.current_key_id().await.unwrap();
    let file = dir.join(format!("{first}.key"));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let (image, key) = (ImageId::new(), DataKey::generate());
    let wrapped = keys.wrap(image, &key).await.unwrap();
    assert_eq!((wrapped.provider.as_str(), wrapped.key_id.as_str()), (PROVIDER, first.as_str()));
    assert_eq!(keys.unwrap(image, &wrapped).await.unwrap(), key);
    assert!(matches!(keys.unwrap(ImageId::new(), &wrapped).await, Err(Error::KeyUnavailable { .. })));
    let mut changed = wrapped.clone();
    *changed.ciphertext.last_mut().unwrap() ^= 1;
    assert!(keys.unwrap(image, &changed).await.is_err(), "changed bytes");

    let second = keys.new_key().unwrap();
    assert_ne!(first, second);
    assert_eq!(keys.current_key_id().await.unwrap(), second);
    assert_eq!(keys.key_ids().unwrap().len(), 2);
    assert_eq!(keys.unwrap(image, &wrapped).await.unwrap(), key, "old keys still open old images");
    assert!(keys.remove_key(&second).is_err(), "the current key is never removed");
    keys.remove_key(&first).unwrap();
    let err = keys.unwrap(image, &wrapped).await.unwrap_err().to_string();
    assert!(err.contains(&first), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn refuses_ids_that_leave_the_directory_and_missing_keys() {
    let dir = temp_dir("ids");
    let keys = LocalKeys::open_or_create(&dir).unwrap();
    let image = ImageId::new();
    let mut wrapped = keys.wrap(image, &DataKey::generate()).await.unwrap();
    for id in ["../catalog", "a/b", ""] {
        wrapped.key_id = id.into();
        assert!(matches!(keys.unwrap(image, &wrapped).await, Err(Error::KeyUnavailable { .. })), "{id:?}");
    }
    wrapped.provider = "aws-kms".into();
    assert!(keys.unwrap(image, &wrapped).await.unwrap_err().to_string().contains("aws-kms"));
    std::fs::remove_file(dir.join("current")).unwrap();
    assert!(keys.wrap(image, &DataKey::generate()).await.is_err(), "no current key: wrapping fails closed");
    assert!(LocalKeys::open(dir.join("absent")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_key_from_hex_has_a_fingerprint_id() {
    let hex_key = hex::encode([7u8; 32]);
    let keys = LocalKeys::from_hex(&hex_key).unwrap();
    let id = keys.current_key_id().await.unwrap();
    assert!(id.starts_with("env-") && !hex_key.contains(&id[4..]), "{id}");
    let image = ImageId::new();
    let key = DataKey::generate();
    let wrapped = keys.wrap(image, &key).await.unwrap();
    assert_eq!(LocalKeys::from_hex(&hex_key).unwrap().unwrap(image, &wrapped).await.unwrap(), key);
    assert!(LocalKeys::from_hex(&hex::encode([8u8; 32])).unwrap().unwrap(image, &wrapped).await.is_err());
    assert!(LocalKeys::from_hex("abc").is_err());
    assert!(keys.new_key().is_err());
}
