//! Reflink clones (`toygres_local::cluster::reflink`) on a real reflink filesystem: the one
//! `.ci/xfs.sh` loop-mounts (XFS, reflink=1) and names in `TOYGRES_REFLINK_DIR`. Without it these
//! tests print why and are skipped; with `CI=true` they fail. The refusals on filesystems without
//! reflink (tmpfs `/dev/shm`, the temporary directory when it lacks reflink) run everywhere.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use toygres_core::{Error, ErrorClass};
use toygres_local::cluster::reflink::{self, CloneStats};

#[path = "support/reflink_dir.rs"]
mod reflink_dir;

/// The tests that write on the reflink filesystem run one at a time: one of them measures its
/// free space.
static ON_REFLINK_FS: Mutex<()> = Mutex::new(());

/// A fresh directory on the reflink filesystem, or `None` (test skipped) outside CI.
fn reflink_base() -> Option<(std::sync::MutexGuard<'static, ()>, tempfile::TempDir)> {
    let dir = reflink_dir::reflink_dir()?;
    let guard = ON_REFLINK_FS.lock().unwrap_or_else(|e| e.into_inner());
    let base = tempfile::Builder::new().prefix("reflink-test-").tempdir_in(&dir).unwrap();
    Some((guard, base))
}

fn write(path: &Path, content: &[u8], mode: u32) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with nested directories, modes, symbolic links (relative, absolute, dangling, to a
/// directory) and a read-only directory.
fn sample_tree(root: &Path) {
    mkdir(root, 0o750);
    write(&root.join("top.txt"), b"top\n", 0o644);
    write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("empty"), b"", 0o600);
    mkdir(&root.join("a"), 0o750);
    mkdir(&root.join("a/b"), 0o700);
    write(&root.join("a/b/deep.bin"), &pattern(3 << 20, 7), 0o600);
    write(&root.join("a/setgid"), b"sg", 0o2750);
    mkdir(&root.join("ro"), 0o755);
    write(&root.join("ro/frozen"), b"frozen", 0o400);
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    std::os::unix::fs::symlink("top.txt", root.join("link-to-top")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("absolute")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("a/b", root.join("dir-link")).unwrap();
}

/// `len` bytes that differ from one block to the next (never all zeros).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i / 4096) as u8 ^ (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// Every entry below `root`: relative path, kind, permission bits, content or link target.
fn describe(root: &Path) -> Vec<(PathBuf, char, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, char, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.mode() & 0o7777;
            if m.is_dir() {
                out.push((rel, 'd', mode, Vec::new()));
                walk(root, &path, out);
            } else if m.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes();
                out.push((rel, 'l', 0, target));
            } else {
                out.push((rel, 'f', mode, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = vec![(PathBuf::new(), 'd', fs::metadata(root).unwrap().mode() & 0o7777, Vec::new())];
    walk(root, root, &mut out);
    out
}

fn assert_unsupported(err: &Error, names: &[&str]) {
    assert_eq!(err.class(), ErrorClass::Unsupported, "{err}");
    for name in names {
        assert!(err.to_string().contains(name), "the error should name {name}: {err}");
    }
}

/// Bytes this thread has read through read(2) and friends, from /proc/thread-self/io.
fn thread_read_bytes() -> u64 {
    let io = fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).unwrap().trim().parse().unwrap()
}

/// Free bytes of the filesystem at `dir`, after flushing it.
fn free_bytes(dir: &Path) -> u64 {
    let d = fs::File::open(dir).unwrap();
    nix::unistd::syncfs(&d).unwrap();
    let st = nix::sys::statvfs::fstatvfs(&d).unwrap();
    st.blocks_free() as u64 * st.fragment_size() as u64
}

#[test]
fn filesystems_are_named() {
    assert_eq!(reflink::filesystem_of("/proc").unwrap().name, "proc");
    if Path::new("/dev/shm").is_dir() {
        assert_eq!(reflink::filesystem_of("/dev/shm").unwrap().name, "tmpfs");
    }
    let missing = reflink::filesystem_of("/no/such/path").unwrap_err();
    assert!(missing.to_string().contains("/no/such/path"), "{missing}");
    if let Some((_guard, base)) = reflink_base() {
        let fs = reflink::filesystem_of(base.path()).unwrap();
        assert!(fs.name == "xfs" || fs.name == "btrfs", "TOYGRES_REFLINK_DIR is on {fs} ({:#x})", fs.magic);
    }
}

/// On a filesystem without reflink, every entry point refuses with the filesystem's name and
/// leaves nothing behind; nothing is copied instead.
fn refused_on(dir: &Path) {
    let fs_name = reflink::filesystem_of(dir).unwrap().name;
    assert!(!reflink::supports_reflink(dir).unwrap(), "{fs_name} at {} claims reflink", dir.display());
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "the probe left files in {}", dir.display());

    write(&dir.join("file"), b"data", 0o644);
    let err = reflink::clone_file(dir.join("file"), dir.join("copy")).unwrap_err();
    assert_unsupported(&err, &[&fs_name, "reflink"]);
    assert!(!dir.join("copy").exists());

    sample_tree(&dir.join("src"));
    let err = reflink::clone_tree(dir.join("src"), dir.join("dst"), None).unwrap_err();
    assert_unsupported(&err, &[&fs_name]);
    assert!(fs::symlink_metadata(dir.join("dst")).is_err(), "a failed clone left {}", dir.join("dst").display());
    fs::set_permissions(dir.join("src/ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_filesystem_without_reflink_is_refused_by_name() {
    if Path::new("/dev/shm").is_dir() {
        refused_on(tempfile::tempdir_in("/dev/shm").unwrap().path());
    }
    let tmp = tempfile::tempdir().unwrap();
    if reflink::supports_reflink(tmp.path()).unwrap() {
        eprintln!("the temporary directory {} supports reflink; only tmpfs was checked", tmp.path().display());
    } else {
        eprintln!("the temporary directory is on {}", reflink::filesystem_of(tmp.path()).unwrap());
        refused_on(tmp.path());
    }
}

#[test]
fn the_probe_finds_reflink_and_leaves_nothing() {
    let Some((_guard, base)) = reflink_base() else { return };
    assert!(reflink::supports_reflink(base.path()).unwrap());
    assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0, "the probe left files behind");
    let err = reflink::supports_reflink(base.path().join("missing")).unwrap_err();
    assert_ne!(err.class(), ErrorClass::Unsupported, "a missing directory is no verdict: {err}");
}

#[test]
fn a_tree_is_recreated_with_its_directories_files_links_and_modes() {
    let Some((_guard, base)) = reflink_base() else { return };
    let (src, dst) = (base.path().join("src"), base.path().join("dst"));
    sample_tree(&src);
    let stats = reflink::clone_tree(&src, &dst, None).unwrap();
    assert_eq!(
        stats,
        CloneStats { files: 6, dirs: 4, symlinks: 4, bytes: 4 + 18 + (3 << 20) + 2 + 6 },
        "the root, a, a/b and ro; six files; four links"
    );
    assert_eq!(describe(&dst), describe(&src));
    // The link to a directory is a link, not a copy of it.
    assert!(fs::symlink_metadata(dst.join("dir-link")).unwrap().file_type().is_symlink());
    // Clones of one source can be made side by side, and a clone is itself a source.
    let again = reflink::clone_tree(&dst, base.path().join("again"), None).unwrap();
    assert_eq!(again, stats);
    assert_eq!(describe(&base.path().join("again")), describe(&src));
    for tree in ["src", "dst", "again"] {
        fs::set_permissions(base.path().join(tree).join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn a_clone_and_its_source_change_independently() {
    let Some((_guard, base)) = reflink_base() else { return };
    let (src, dst) = (base.path().join("src"), base.path().join("dst"));
    mkdir(&src, 0o755);
    let original = pattern(4 << 20, 1);
    write(&src.join("table"), &original, 0o600);
    reflink::clone_tree(&src, &dst, None).unwrap();

    // Writing into the clone leaves the source as it was.
    let mut f = fs::OpenOptions::new().write(true).open(dst.join("table")).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(&[0xAA; 8192]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::read(src.join("table")).unwrap(), original);
    let mut expected_clone = original.clone();
    expected_clone[1 << 20..(1 << 20) + 8192].fill(0xAA);
    assert_eq!(fs::read(dst.join("table")).unwrap(), expected_clone);

    // And the other way round, including a change of length.
    let mut f = fs::OpenOptions::new().write(true).open(src.join("table")).unwrap();
    f.write_all(&[0x55; 4096]).unwrap();
    f.set_len(1 << 20).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::read(dst.join("table")).unwrap(), expected_clone);
    let mut expected_src = original[..1 << 20].to_vec();
    expected_src[..4096].fill(0x55);
    assert_eq!(fs::read(src.join("table")).unwrap(), expected_src);

    // New files on either side stay on their side.
    write(&dst.join("new"), b"only in the clone", 0o600);
    assert!(!src.join("new").exists());
    let mut content = String::new();
    fs::File::open(dst.join("new")).unwrap().read_to_string(&mut content).unwrap();
    assert_eq!(content, "only in the clone");
}

/// The work a clone does does not grow with the size of the files: neither the bytes read nor
/// the free space it takes. (Not a timing: these are counters of work done.)
#[test]
fn cloning_reads_nothing_and_shares_the_blocks() {
    let Some((_guard, base)) = reflink_base() else { return };
    const MIB: u64 = 1 << 20;
    let small = base.path().join("small");
    mkdir(&small, 0o700);
    write(&small.join("one-mib"), &pattern(MIB as usize, 2), 0o600);

    let big = base.path().join("big");
    mkdir(&big, 0o700);
    let before_write = free_bytes(base.path());
    let mut f = fs::File::create(big.join("256-mib")).unwrap();
    let chunk = pattern(MIB as usize, 3);
    for _ in 0..256 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    // A 1 GiB file with data at both ends and a hole between.
    let mut sparse = fs::File::create(big.join("1-gib-sparse")).unwrap();
    sparse.write_all(&chunk).unwrap();
    sparse.seek(SeekFrom::Start(1024 * MIB - MIB)).unwrap();
    sparse.write_all(&chunk).unwrap();
    sparse.sync_all().unwrap();
    let written = before_write - free_bytes(base.path());
    assert!(written >= 256 * MIB, "writing 258 MiB took only {written} bytes: the measure is meaningless");

    // (bytes read, bytes of free space taken) by one clone.
    let work = |src: &Path, dst: &Path| {
        let (free, read) = (free_bytes(base.path()), thread_read_bytes());
        let stats = reflink::clone_tree(src, dst, None).unwrap();
        let read = thread_read_bytes() - read;
        let taken = free.saturating_sub(free_bytes(base.path()));
        (stats, read, taken)
    };
    let (small_stats, small_read, small_taken) = work(&small, &base.path().join("small-clone"));
    let (big_stats, big_read, big_taken) = work(&big, &base.path().join("big-clone"));
    assert_eq!(small_stats.bytes, MIB);
    assert_eq!(big_stats.bytes, 256 * MIB + 1024 * MIB);
    println!(
        "1 MiB: read {small_read} B, took {small_taken} B; 1.25 GiB: read {big_read} B, took {big_taken} B of free space"
    );
    // Reading /proc/thread-self/io itself counts a few hundred bytes.
    assert!(small_read < 64 << 10 && big_read < 64 << 10, "a clone read file contents");
    assert!(big_taken < 4 * MIB, "cloning 258 MiB of data took {big_taken} bytes of free space");
    assert!(big_taken <= small_taken + 4 * MIB, "the work grew with the size: {small_taken} then {big_taken}");

    // The clone has the blocks as its own (what `stat` shows) while sharing them.
    let clone = fs::metadata(base.path().join("big-clone/256-mib")).unwrap();
    assert!(clone.blocks() * 512 >= 256 * MIB);
    assert_eq!(fs::read(base.path().join("big-clone/1-gib-sparse")).unwrap().len() as u64, 1024 * MIB);
}

#[test]
fn the_owner_is_applied_without_following_links() {
    let Some((_guard, base)) = reflink_base() else { return };
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: giving files to another owner needs root");
        return;
    }
    let (src, dst) = (base.path().join("src"), base.path().join("dst"));
    sample_tree(&src);
    let outside = base.path().join("outside");
    write(&outside, b"not in the tree", 0o644);
    std::os::unix::fs::symlink(&outside, src.join("out-link")).unwrap();
    let (uid, gid) = (4242, 4343);
    reflink::clone_tree(&src, &dst, Some((uid, gid))).unwrap();

    let mut seen = 0;
    let mut stack = vec![dst.clone()];
    while let Some(path) = stack.pop() {
        let m = fs::symlink_metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", path.display());
        seen += 1;
        if m.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert_eq!(seen, 1 + 3 + 6 + 5, "the root, three directories, six files, five links");
    // The chown kept the setgid bit, and the link's target was not given away.
    assert_eq!(fs::metadata(dst.join("a/setgid")).unwrap().mode() & 0o7777, 0o2750);
    assert_eq!(fs::metadata(&outside).unwrap().uid(), 0);
    assert_eq!(describe(&dst), describe(&src));
    for tree in [&src, &dst] {
        fs::set_permissions(tree.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn a_failed_clone_leaves_nothing_behind() {
    let Some((_guard, base)) = reflink_base() else { return };
    let src = base.path().join("src");
    sample_tree(&src);
    // A FIFO deep in the tree, found after files and the read-only directory were cloned.
    fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    mkdir(&src.join("zz"), 0o755);
    nix::unistd::mkfifo(&src.join("zz/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let dst = base.path().join("dst");
    let err = reflink::clone_tree(&src, &dst, None).unwrap_err();
    assert_unsupported(&err, &["fifo", "FIFO"]);
    assert!(fs::symlink_metadata(&dst).is_err(), "a failed clone left {}", dst.display());

    // An existing destination is refused and left as it was.
    fs::remove_file(src.join("zz/fifo")).unwrap();
    mkdir(&dst, 0o700);
    write(&dst.join("keep"), b"mine", 0o600);
    let err = reflink::clone_tree(&src, &dst, None).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "dst_dir", .. }), "{err}");
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 1);

    // A destination inside the source, and a source that is not a directory.
    let err = reflink::clone_tree(&src, src.join("a/inner"), None).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "dst_dir", .. }), "{err}");
    assert!(!src.join("a/inner").exists());
    let err = reflink::clone_tree(src.join("top.txt"), base.path().join("f"), None).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "src_dir", .. }), "{err}");
    let err = reflink::clone_tree(src.join("dir-link"), base.path().join("l"), None).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "src_dir", .. }), "{err}");
    let err = reflink::clone_file(src.join("a"), base.path().join("d")).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "src", .. }), "{err}");
    assert!(!base.path().join("d").exists());

    // Across filesystems: refused before anything is created, naming both.
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let fs_name = reflink::filesystem_of(base.path()).unwrap().name;
        let err = reflink::clone_tree(&src, shm.path().join("dst"), None).unwrap_err();
        assert_unsupported(&err, &[&fs_name, "tmpfs", "different filesystems"]);
        assert_eq!(fs::read_dir(shm.path()).unwrap().count(), 0);
        let err = reflink::clone_file(src.join("top.txt"), shm.path().join("top.txt")).unwrap_err();
        assert_unsupported(&err, &[&fs_name, "tmpfs"]);
        assert_eq!(fs::read_dir(shm.path()).unwrap().count(), 0);
    }
}
