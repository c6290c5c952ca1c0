//! `toygres-seal`: seals and opens one object of an encrypted toygres image as a stream, for the
//! job scripts of `toygres-k8s` (`templates/seal.sh`). The stored format is
//! `toygres_core::envelope::object` (what the other executors write, so an image taken by one
//! restores on the other).
//!
//! ```text
//! toygres-seal seal --image <uuid> --object <name> --key-file <path>   < plaintext > stored
//! toygres-seal open --image <uuid> --object <name> --key-file <path>   < stored    > plaintext
//! ```
//!
//! - The image's data key is read from a file of 64 hex digits (the job's Secret, mounted), never
//!   from arguments or the environment, and never printed.
//! - `open` writes only the plaintext of chunks it has authenticated; any changed, moved, cut off
//!   or foreign byte (another image, another object name, another key) ends it with exit status 1
//!   and a message naming the image and the object on standard error. Whatever it wrote before
//!   is void: a consumer must fail with it (the scripts run it under `set -o pipefail`).
//! - Exit status: 0 done, 1 refused or an I/O error, 2 a usage error.
//!
//! Plain std I/O in 1 MiB reads, so it is not the bottleneck of a pipe of `zstd` and `azcopy`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use toygres_core::envelope::object::{ObjectOpener, ObjectSealer, CHUNK};
use toygres_core::envelope::DataKey;
use toygres_core::ImageId;

/// Bytes per read of standard input.
const BUFFER: usize = 1 << 20;
/// A key file is 64 hex digits and maybe a newline; anything much longer is not one.
const KEY_FILE_LIMIT: u64 = 256;

const USAGE: &str = "usage: toygres-seal seal|open --image <uuid> --object <name> --key-file <path>\n\
    seal: standard input (plaintext) -> standard output (the stored, encrypted object)\n\
    open: standard input (the stored object) -> standard output (authenticated plaintext only)\n\
    The key file holds the image's data key as 64 hex digits; no key is ever taken from arguments or the environment.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Seal,
    Open,
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    mode: Mode,
    image: ImageId,
    object: String,
    key_file: PathBuf,
}

/// The command line (without the program name); `Err` is a usage error.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mode = match args.next().as_deref() {
        Some("seal") => Mode::Seal,
        Some("open") => Mode::Open,
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("no command".into()),
    };
    let (mut image, mut object, mut key_file) = (None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--image" => &mut image,
            "--object" => &mut object,
            "--key-file" => &mut key_file,
            // Never echo an unknown argument: it might be a key someone tried to pass.
            _ => return Err("unknown argument (the key is read from --key-file only)".into()),
        };
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if slot.replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    let image = image.ok_or("--image is missing")?;
    let image = image.parse::<ImageId>().map_err(|_| format!("--image {image:?} is not a UUID"))?;
    let object = object.filter(|o| !o.is_empty()).ok_or("--object is missing")?;
    let key_file = PathBuf::from(key_file.ok_or("--key-file is missing")?);
    Ok(Args { mode, image, object, key_file })
}

/// The data key in `path`; the message names the file, never its content.
fn read_key(path: &std::path::Path) -> Result<DataKey, String> {
    let file = File::open(path).map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    let mut text = Vec::with_capacity(KEY_FILE_LIMIT as usize);
    let read = file.take(KEY_FILE_LIMIT).read_to_end(&mut text);
    let key = match read {
        Ok(_) => std::str::from_utf8(&text)
            .ok()
            .and_then(|hex| DataKey::from_hex(hex).ok())
            .ok_or_else(|| format!("the key file {} does not hold a data key (64 hex digits)", path.display())),
        Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
    };
    // The key's digits leave memory with the buffer (DataKey wipes its own copy).
    text.fill(0);
    std::hint::black_box(&text);
    key
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Seals or opens `input` into `output`. An error names what failed, never the key.
fn run(args: &Args, key: &DataKey, input: &mut impl Read, output: &mut impl Write) -> Result<(), String> {
    let what = format!("object {} of image {}", args.object, args.image);
    let read_err = |e: io::Error| format!("reading {what} from standard input: {e}");
    let write_err = |e: io::Error| format!("writing {what} to standard output: {e}");
    let mut buf = vec![0u8; BUFFER];
    let mut out = Vec::with_capacity(BUFFER + 2 * CHUNK);
    match args.mode {
        Mode::Seal => {
            let mut sealer = ObjectSealer::new(key, args.image, &args.object);
            loop {
                let n = fill(input, &mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                sealer.push(&buf[..n], &mut out);
                output.write_all(&out).map_err(write_err)?;
                out.clear();
            }
            sealer.finish(&mut out);
        }
        Mode::Open => {
            let mut opener = ObjectOpener::new(key, args.image, &args.object);
            loop {
                let n = fill(input, &mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                opener.push(&buf[..n], &mut out).map_err(|e| e.to_string())?;
                output.write_all(&out).map_err(write_err)?;
                out.clear();
            }
            opener.finish(&mut out).map_err(|e| e.to_string())?;
        }
    }
    output.write_all(&out).map_err(write_err)?;
    output.flush().map_err(write_err)
}

/// Standard input and output as unbuffered files (Rust's stdout is line-buffered).
fn std_files() -> io::Result<(File, File)> {
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    Ok((input, output))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("toygres-seal: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = read_key(&args.key_file).and_then(|key| {
        let (mut input, mut output) = std_files().map_err(|e| format!("standard input/output: {e}"))?;
        run(&args, &key, &mut input, &mut output)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let verb = if args.mode == Mode::Seal { "sealing" } else { "opening" };
            eprintln!("toygres-seal: {verb} object {} of image {} failed: {e}", args.object, args.image);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toygres_core::envelope::object;

    fn args(line: &str) -> Result<Args, String> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn the_command_line() {
        let image = ImageId::new();
        let parsed = args(&format!("open --object db-0000.dump.zst --image {image} --key-file /k")).unwrap();
        let expected =
            Args { mode: Mode::Open, image, object: "db-0000.dump.zst".into(), key_file: PathBuf::from("/k") };
        assert_eq!(parsed, expected);
        for bad in [
            "",
            "decrypt --image x",
            &format!("seal --image {image} --object o"),
            &format!("seal --image {image} --key-file /k"),
            "seal --image not-a-uuid --object o --key-file /k",
            &format!("seal --image {image} --object o --key-file /k --key-file /j"),
            &format!("seal --image {image} --object o --key-file"),
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
        let secret = "ab".repeat(32);
        let err = args(&format!("seal --image {image} --object o --key {secret}")).unwrap_err();
        assert!(!err.contains(&secret), "{err}");
    }

    #[test]
    fn streams_of_many_reads_round_trip_with_the_core() {
        let key = DataKey::generate();
        let image = ImageId::new();
        let plain: Vec<u8> = (0..3 * BUFFER + 12345).map(|i| (i % 251) as u8).collect();
        let a = |mode| Args { mode, image, object: "base-00.tar.zst".into(), key_file: PathBuf::new() };
        let mut sealed = Vec::new();
        run(&a(Mode::Seal), &key, &mut plain.as_slice(), &mut sealed).unwrap();
        assert_eq!(sealed.len() as u64, object::sealed_len(plain.len() as u64));
        assert_eq!(object::open_all(&key, image, "base-00.tar.zst", &sealed).unwrap(), plain);
        let mut opened = Vec::new();
        run(&a(Mode::Open), &key, &mut sealed.as_slice(), &mut opened).unwrap();
        assert_eq!(opened, plain);
        let mut cut = Vec::new();
        let err = run(&a(Mode::Open), &key, &mut &sealed[..sealed.len() - 1], &mut cut).unwrap_err();
        assert!(err.contains("not authentic") && err.contains(&image.to_string()), "{err}");
        assert!(cut.len() < plain.len() && plain.starts_with(&cut), "only authenticated plaintext came out");
    }
}
