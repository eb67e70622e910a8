//! `wagate backup FILE` and `wagate restore FILE`: the data directory as one tar archive.
//!
//! Every SQLite database in the directory (wagate's own, and each linked device's store) is
//! copied with `VACUUM INTO`, consistent while the server keeps running; other files (device
//! credentials, uploads waiting to be sent) are copied as they are. With PostgreSQL or MySQL
//! the archive holds the session files only, and the database is backed up with its own tools.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use wagate_server::Config;

/// Files SQLite keeps beside a database while it is open; a snapshot replaces them.
const SQLITE_SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    let target = std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    let parent = target.parent().context("the backup file needs a directory")?;
    let scratch = tempfile::Builder::new()
        .prefix(".wagate-backup-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let partial = scratch.path().join("backup.tar");
    let mut archive = tar::Builder::new(File::create(&partial).context("cannot create the archive")?);
    let mut files = Vec::new();
    collect_files(data_dir, &mut files).with_context(|| format!("cannot read {}", data_dir.display()))?;
    let mut databases = 0;
    for (n, path) in files.iter().enumerate() {
        let name = path.strip_prefix(data_dir).expect("collected under the data directory");
        if path.starts_with(scratch.path()) || *path == target || is_side_file(path) {
            continue;
        }
        if wagate_store::is_sqlite_file(path) {
            let copy = scratch.path().join(format!("{n}.db"));
            wagate_store::snapshot_sqlite(path, &copy)
                .await
                .with_context(|| format!("cannot copy the database {}", path.display()))?;
            archive.append_path_with_name(&copy, name)?;
            std::fs::remove_file(&copy)?;
            databases += 1;
        } else {
            archive
                .append_path_with_name(path, name)
                .with_context(|| format!("cannot add {}", path.display()))?;
        }
    }
    archive.into_inner()?.sync_all()?;
    std::fs::rename(&partial, &target).with_context(|| format!("cannot write {}", target.display()))?;
    println!(
        "backed up {} ({databases} databases, {} files in all) to {}",
        data_dir.display(),
        files.len(),
        target.display()
    );
    let url = config.database_url();
    if !url.starts_with("sqlite:") {
        let tool = if url.starts_with("postgres") {
            "pg_dump (restore with pg_restore or psql)"
        } else {
            "mysqldump (restore with mysql)"
        };
        println!("the database itself is not in the archive: back it up with {tool}");
    }
    Ok(())
}

/// Unpacks `file` into the data directory. An existing data directory is kept beside it
/// (renamed `<dir>.before-restore-<time>`) when `replace` is given, and refused otherwise.
/// The server must be stopped.
pub fn restore(config: &Config, file: &Path, replace: bool) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    let archive = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let has_data = std::fs::read_dir(data_dir).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if has_data {
        if !replace {
            bail!(
                "{} is not empty; stop the server and run `wagate restore --replace {}` to restore over it \
                 (the current data is kept beside it)",
                data_dir.display(),
                file.display()
            );
        }
        let kept = PathBuf::from(format!("{}.before-restore-{}", data_dir.display(), wagate_store::now_ms()));
        std::fs::rename(data_dir, &kept)
            .with_context(|| format!("cannot move {} aside", data_dir.display()))?;
        println!("the previous data is in {}", kept.display());
    }
    std::fs::create_dir_all(data_dir)?;
    tar::Archive::new(archive)
        .unpack(data_dir)
        .with_context(|| format!("cannot unpack {}", file.display()))?;
    println!("restored {} into {}", file.display(), data_dir.display());
    Ok(())
}

fn is_side_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    SQLITE_SIDE_FILES.iter().any(|suffix| name.ends_with(suffix))
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}
