//! The rendered azcopy command lines, exactly as the jobs run them.

use crate::{AzcopySettings, AzureAuth, AzureBlobStore};
use toygres_core::{BlobStore, CommandTransfer, ImageId, ImageLocation, Password, Transfer};

fn workload() -> AzureAuth {
    AzureAuth::WorkloadIdentity {
        client_id: "11111111-1111-1111-1111-111111111111".into(),
        tenant_id: "22222222-2222-2222-2222-222222222222".into(),
        federated_token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
        authority_host: None,
    }
}

fn command(store: &AzureBlobStore, location: &ImageLocation) -> CommandTransfer {
    match store.transfer(location) {
        Transfer::Command(c) => c,
        other => panic!("expected an azcopy command, got {other:?}"),
    }
}

#[test]
fn workload_identity_renders_the_upload_and_download_commands_without_a_login() {
    let store = AzureBlobStore::builder().account("toygresimages").auth(workload()).build().unwrap();
    let image: ImageId = "0b6f9b8e-6d7a-4f7e-9a59-1c5d2f0b7a11".parse().unwrap();
    let c = command(&store, &ImageLocation::for_image(image));
    assert_eq!(c.program, "azcopy");
    // No `azcopy login`: it needs keyctl, which RuntimeDefault seccomp blocks; every copy logs in
    // itself through AZCOPY_AUTO_LOGIN_TYPE=WORKLOAD (never `--identity`: IMDS gives 403 on AKS).
    assert_eq!(c.login, None);
    let url = "https://toygresimages.blob.core.windows.net/images/images/0b6f9b8e-6d7a-4f7e-9a59-1c5d2f0b7a11/db-0000.dump.zst";
    let quiet = |level: &'static str| vec!["--block-size-mb", "16", "--output-level", level, "--log-level", "ERROR"];
    let mut upload = vec!["copy", url, "--from-to", "PipeBlob"];
    upload.extend(quiet("essential"));
    assert_eq!(c.render(&c.upload_from_stdin, "db-0000.dump.zst"), upload);
    let mut download = vec!["copy", url, "--from-to", "BlobPipe"];
    download.extend(quiet("quiet"));
    assert_eq!(c.render(&c.download_to_stdout, "db-0000.dump.zst"), download);
    assert!(!format!("{c:?}").contains("--identity"));
    // No secret at all in this mode.
    assert!(c.url_query.is_none() && c.secret_env.is_empty());
    let env: Vec<_> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for expected in [
        "AZCOPY_AUTO_LOGIN_TYPE=WORKLOAD",
        "AZURE_CLIENT_ID=11111111-1111-1111-1111-111111111111",
        "AZURE_TENANT_ID=22222222-2222-2222-2222-222222222222",
        "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token",
    ] {
        assert!(env.iter().any(|e| e == expected), "{expected} missing from {env:?}");
    }
}

#[test]
fn sas_mode_has_no_login_and_keeps_the_sas_out_of_debug() {
    let store = AzureBlobStore::builder()
        .account("acct")
        .container("imgs")
        .auth(AzureAuth::Sas(Password::new("?sv=2022-11-02&sp=rcwl&sig=TOPSECRET")))
        .azcopy(AzcopySettings { program: "/opt/azcopy".into(), concurrency: Some(4), ..Default::default() })
        .build()
        .unwrap();
    let location = ImageLocation::for_image(ImageId::new());
    let c = command(&store, &location);
    assert_eq!(c.login, None);
    assert_eq!(c.program, "/opt/azcopy");
    assert_eq!(c.base_url, format!("https://acct.blob.core.windows.net/imgs/{}", location.prefix));
    assert!(c.env.contains(&("AZCOPY_CONCURRENCY_VALUE".into(), "4".into())));
    let args = c.render(&c.download_to_stdout, "manifest.json");
    assert_eq!(args[1], format!("{}/manifest.json?sv=2022-11-02&sp=rcwl&sig=TOPSECRET", c.base_url));
    for shown in [format!("{c:?}"), format!("{:?}", store.transfer(&location)), format!("{store:?}")] {
        assert!(!shown.contains("TOPSECRET"), "{shown}");
    }
}

#[test]
fn emulator_mode_derives_a_container_sas() {
    let store = AzureBlobStore::builder().emulator("http://127.0.0.1:10000/").build().unwrap();
    let c = command(&store, &ImageLocation::for_image(ImageId::new()));
    assert!(c.base_url.starts_with("http://127.0.0.1:10000/devstoreaccount1/images/images/"), "{}", c.base_url);
    let sas = c.url_query.as_ref().expect("a SAS for azcopy").expose().to_string();
    assert!(sas.contains("sr=c") && sas.contains("sig="), "{sas}");
    assert!(c.login.is_none());
}
