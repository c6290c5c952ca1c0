//! `toygres-seal`, the program the job scripts seal and open objects with, as a process: what it
//! seals the core opens and the reverse, across many chunks and reads; it hands on only
//! authenticated plaintext and exits non-zero, naming the image and the object but never the key,
//! on a changed, cut off or foreign object; it takes the key from a file only.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use toygres_core::envelope::object::{self, CHUNK, HEADER, MAGIC, TAG};
use toygres_core::envelope::DataKey;
use toygres_core::ImageId;

const PROGRAM: &str = env!("CARGO_BIN_EXE_toygres-seal");

struct Keyed {
    _dir: tempfile::TempDir,
    key: DataKey,
    file: String,
    image: ImageId,
}

impl Keyed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        let path = dir.path().join("data-key");
        std::fs::write(&path, format!("{}\n", key.expose_hex())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        Self { file: path.display().to_string(), _dir: dir, key, image: ImageId::new() }
    }

    /// Runs `toygres-seal MODE --image .. --object OBJECT --key-file ..` on `input`.
    fn run(&self, mode: &str, object: &str, input: &[u8]) -> Output {
        run(&[mode, "--image", &self.image.to_string(), "--object", object, "--key-file", &self.file], input)
    }
}

fn run(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(PROGRAM)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A writer thread: the program writes while it reads, and may stop reading early.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bytes that do not compress or repeat, of length `n`.
fn data(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn what_it_seals_the_core_opens_and_the_reverse() {
    let k = Keyed::new();
    // Empty, less than a chunk, exactly a chunk, and several 1 MiB reads plus a tail.
    for len in [0, 1000, CHUNK, 2 * CHUNK + 1, (3 << 20) + 4321] {
        let plain = data(len);
        let sealed = k.run("seal", "db-0000.dump.zst", &plain);
        assert!(sealed.status.success(), "{len}: {}", stderr(&sealed));
        assert!(sealed.stdout.starts_with(MAGIC), "{len}");
        assert_eq!(sealed.stdout.len() as u64, object::sealed_len(len as u64), "{len}");
        let opened = object::open_all(&k.key, k.image, "db-0000.dump.zst", &sealed.stdout).unwrap();
        assert!(opened == plain, "{len}: the core opens what the program sealed");

        let by_core = object::seal_all(&k.key, k.image, "db-0000.dump.zst", &plain);
        let out = k.run("open", "db-0000.dump.zst", &by_core);
        assert!(out.status.success(), "{len}: {}", stderr(&out));
        assert!(out.stdout == plain, "{len}: the program opens what the core sealed");
    }
    // Two seals of the same bytes differ (a fresh salt each time).
    let plain = data(5000);
    assert_ne!(k.run("seal", "x", &plain).stdout, k.run("seal", "x", &plain).stdout);
}

#[test]
fn a_changed_cut_off_or_foreign_object_is_refused_and_only_authenticated_bytes_come_out() {
    let k = Keyed::new();
    let name = "base-00.tar.zst";
    let plain = data(4 * CHUNK + 100);
    let sealed = object::seal_all(&k.key, k.image, name, &plain);
    let refused = |out: &Output, what: &str| {
        assert!(!out.status.success(), "{what}: accepted");
        let err = stderr(out);
        assert!(err.contains(&k.image.to_string()) && err.contains(name), "{what}: {err}");
        assert!(!err.contains(&k.key.expose_hex()), "{what}: the key is shown");
        assert!(plain.starts_with(&out.stdout), "{what}: bytes that are not the plaintext came out");
    };

    // A byte of the third chunk: at most the first two chunks' plaintext comes out.
    let mut flipped = sealed.clone();
    flipped[HEADER + 2 * (CHUNK + TAG) + 10] ^= 1;
    let out = k.run("open", name, &flipped);
    refused(&out, "a flipped byte");
    assert!(out.stdout.len() <= 2 * CHUNK, "{}", out.stdout.len());
    // Cut off at a chunk boundary, and inside the last chunk.
    refused(&k.run("open", name, &sealed[..HEADER + 2 * (CHUNK + TAG)]), "cut at a chunk boundary");
    refused(&k.run("open", name, &sealed[..sealed.len() - 1]), "cut inside the last chunk");
    refused(&k.run("open", name, &sealed[..HEADER - 1]), "cut inside the header");
    // Chunks swapped, the object under another name, of another image, under another key, or plaintext.
    let mut swapped = sealed.clone();
    let (a, b) = (HEADER, HEADER + CHUNK + TAG);
    let first = swapped[a..b].to_vec();
    swapped.copy_within(b..b + CHUNK + TAG, a);
    swapped[b..b + CHUNK + TAG].copy_from_slice(&first);
    refused(&k.run("open", name, &swapped), "swapped chunks");
    let renamed = object::seal_all(&k.key, k.image, "globals.sql.zst", &plain);
    refused(&k.run("open", name, &renamed), "another object's bytes");
    refused(&k.run("open", name, &object::seal_all(&k.key, ImageId::new(), name, &plain)), "another image's object");
    refused(&k.run("open", name, &object::seal_all(&DataKey::generate(), k.image, name, &plain)), "another key");
    refused(&k.run("open", name, &plain), "plaintext");
}

#[test]
fn the_key_comes_from_a_file_only() {
    let k = Keyed::new();
    let image = k.image.to_string();
    let hex = k.key.expose_hex();
    // No --key (or anything but the four arguments), no key from the environment.
    let out = run(&["seal", "--image", &image, "--object", "x", "--key", &hex], b"x");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&hex) && out.stdout.is_empty());
    let mut with_env = Command::new(PROGRAM);
    with_env.args(["seal", "--image", &image, "--object", "x"]).env("TOYGRES_DATA_KEY", &hex);
    let out = with_env.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a key file is required: {}", stderr(&out));

    // A missing file, and a file that holds no key: refused, the file named, its content not shown.
    let missing = run(&["seal", "--image", &image, "--object", "x", "--key-file", "/nonexistent/key"], b"x");
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/key") && missing.stdout.is_empty(), "{}", stderr(&missing));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-key");
    std::fs::write(&bad, "not-a-key-but-a-secret-anyway").unwrap();
    let out = run(&["open", "--image", &image, "--object", "x", "--key-file", bad.to_str().unwrap()], b"x");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("does not hold a data key") && !err.contains("secret-anyway"), "{err}");
    assert!(Path::new(PROGRAM).is_file());
}
