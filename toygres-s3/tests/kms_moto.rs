//! [`AwsKms`] against moto's KMS (`eval "$(bash .ci/moto.sh)"`, which sets TOYGRES_S3_URL; moto
//! answers KMS on the same port and does not check signatures). Without it the tests are
//! skipped, except under `CI=true`, where they fail.

#[path = "../../tests/moto_support.rs"]
mod moto_support;

use serde_json::{json, Value};
use toygres_core::envelope::{DataKey, KeyProvider, WrappedKey};
use toygres_core::{Error, ImageId};
use toygres_s3::kms::{AwsKms, PROVIDER};

const SECRET: &str = "moto-kms-secret-Vb7";

/// A raw, unsigned KMS call (moto routes on the credential scope, so it carries a dummy one).
async fn admin(url: &str, action: &str, body: Value) -> Value {
    moto_support::kms(url, action, &body.to_string()).await
}

/// A new symmetric key: (key id, ARN).
async fn create_key(url: &str) -> (String, String) {
    let meta = &admin(url, "CreateKey", json!({"Description": "toygres test"})).await["KeyMetadata"];
    (meta["KeyId"].as_str().unwrap().to_string(), meta["Arn"].as_str().unwrap().to_string())
}

fn kms(url: &str, key_id: &str) -> AwsKms {
    AwsKms::builder(key_id).endpoint(url).credentials("testing", SECRET).build().unwrap()
}

fn reason(e: Error) -> String {
    match e {
        Error::KeyUnavailable { reason } => reason,
        other => panic!("expected KeyUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn wraps_and_unwraps_a_data_key() {
    let Some(url) = moto_support::url() else { return };
    let (id, arn) = create_key(&url).await;
    let kms = kms(&url, &id);
    assert_eq!(kms.current_key_id().await.unwrap(), arn);
    let (image, key) = (ImageId::new(), DataKey::generate());
    let wrapped = kms.wrap(image, &key).await.unwrap();
    assert_eq!((wrapped.provider.as_str(), wrapped.key_id.as_str()), (PROVIDER, arn.as_str()));
    assert!(!wrapped.ciphertext.windows(32).any(|w| w == key.expose()), "the data key is not in the blob");
    assert_eq!(kms.unwrap(image, &wrapped).await.unwrap(), key);
    // What the catalog stores survives its round trip.
    let stored: WrappedKey = serde_json::from_str(&serde_json::to_string(&wrapped).unwrap()).unwrap();
    assert_eq!(kms.unwrap(image, &stored).await.unwrap(), key);
    let again = kms.wrap(image, &key).await.unwrap();
    assert_ne!(again.ciphertext, wrapped.ciphertext, "every wrap is fresh");
    for shown in [format!("{kms:?}"), kms.describe()] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
}

#[tokio::test]
async fn unwrap_refuses_other_images_changed_bytes_and_other_keys() {
    let Some(url) = moto_support::url() else { return };
    let ((a, _), (_, b_arn)) = (create_key(&url).await, create_key(&url).await);
    let kms = kms(&url, &a);
    let (image, key) = (ImageId::new(), DataKey::generate());
    let wrapped = kms.wrap(image, &key).await.unwrap();

    let other_image = reason(kms.unwrap(ImageId::new(), &wrapped).await.unwrap_err());
    assert!(
        other_image.contains("another image") && other_image.contains("InvalidCiphertextException"),
        "{other_image}"
    );

    let mut changed = wrapped.clone();
    *changed.ciphertext.last_mut().unwrap() ^= 1;
    let changed = reason(kms.unwrap(image, &changed).await.unwrap_err());
    assert!(changed.contains("were changed"), "{changed}");

    let other_key = WrappedKey { key_id: b_arn.clone(), ..wrapped.clone() };
    let other_key = reason(kms.unwrap(image, &other_key).await.unwrap_err());
    assert!(other_key.contains(&b_arn) && other_key.contains("another key"), "{other_key}");

    let local = WrappedKey { provider: "local".into(), ..wrapped.clone() };
    assert!(reason(kms.unwrap(image, &local).await.unwrap_err()).contains("\"local\""));
    for text in [other_image, changed, other_key] {
        assert!(!text.contains(SECRET), "{text}");
    }
    assert_eq!(kms.unwrap(image, &wrapped).await.unwrap(), key, "the intact record still unwraps");
}

#[tokio::test]
async fn disabled_deleted_and_missing_keys_wrap_nothing() {
    let Some(url) = moto_support::url() else { return };
    let (disabled, _) = create_key(&url).await;
    admin(&url, "DisableKey", json!({"KeyId": disabled})).await;
    let err = kms(&url, &disabled).wrap(ImageId::new(), &DataKey::generate()).await.unwrap_err();
    assert!(reason(err).contains("is Disabled"));

    let (deleted, _) = create_key(&url).await;
    admin(&url, "ScheduleKeyDeletion", json!({"KeyId": deleted, "PendingWindowInDays": 7})).await;
    let err = kms(&url, &deleted).wrap(ImageId::new(), &DataKey::generate()).await.unwrap_err();
    let text = reason(err);
    assert!(text.contains("PendingDeletion") && text.contains("cancel-key-deletion"), "{text}");
    let err = kms(&url, &deleted).current_key_id().await.unwrap_err();
    assert!(matches!(err, Error::KeyUnavailable { .. }), "{err:?}");

    let missing = kms(&url, "alias/toygres-missing");
    let text = reason(missing.current_key_id().await.unwrap_err());
    assert!(text.contains("does not exist in region us-east-1") && text.contains("NotFoundException"), "{text}");
    assert!(reason(missing.wrap(ImageId::new(), &DataKey::generate()).await.unwrap_err()).contains("does not exist"));
}

#[tokio::test]
async fn after_rotation_old_keys_still_unwrap_and_new_ones_use_the_new_key() {
    let Some(url) = moto_support::url() else { return };
    let ((a, a_arn), (b, b_arn)) = (create_key(&url).await, create_key(&url).await);
    let alias = format!("alias/toygres-{}", &ImageId::new().to_string()[..8]);
    admin(&url, "CreateAlias", json!({"AliasName": alias, "TargetKeyId": a})).await;
    let (image, key) = (ImageId::new(), DataKey::generate());
    let old = kms(&url, &alias).wrap(image, &key).await.unwrap();
    assert_eq!(old.key_id, a_arn, "wrapped keys record the key's ARN, not the alias");

    let rotated = kms(&url, &b);
    assert_eq!(rotated.unwrap(image, &old).await.unwrap(), key, "KMS finds key A from the record");
    let new = rotated.wrap(image, &key).await.unwrap();
    assert_eq!((new.key_id.as_str(), rotated.current_key_id().await.unwrap()), (b_arn.as_str(), b_arn.clone()));
    assert_eq!(rotated.unwrap(image, &new).await.unwrap(), key);

    // Pointing the alias at B moves new wraps there too (wrap looks the key up every time).
    admin(&url, "UpdateAlias", json!({"AliasName": alias, "TargetKeyId": b})).await;
    assert_eq!(kms(&url, &alias).wrap(image, &key).await.unwrap().key_id, b_arn);
}
