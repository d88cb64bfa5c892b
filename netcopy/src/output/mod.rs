//! Everything a run leaves behind, in `results/<timestamp>/`: the rows as CSV and JSON
//! (written and flushed one by one, so an interruption loses nothing finished), plots and a
//! report. Writers only read rows.

pub mod datapath;
pub mod html;
pub mod plots;
pub mod report;
pub mod summary;

use std::{
    fs::{self, File},
    io::{BufWriter, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    row::Row,
};

/// The run's folder and its two row files, kept valid after every row.
pub struct ResultsDir {
    dir: PathBuf,
    id: String,
    csv: csv::Writer<File>,
    json: BufWriter<File>,
    rows: usize,
}

impl ResultsDir {
    /// Creates `<base>/<timestamp>/` and points `<base>/latest` at it.
    pub fn create(base: &Path) -> Result<Self> {
        Self::create_named(base, &crate::timestamp::utc_now(false))
    }

    /// Creates `<base>/<id>/`, or `<id>-2`, `<id>-3`, ... when another run took that name
    /// first (two runs started in the same millisecond): a run never writes into another's
    /// folder, and no file is ever truncated.
    fn create_named(base: &Path, stamp: &str) -> Result<Self> {
        fs::create_dir_all(base)
            .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;
        let (id, dir) = (1..)
            .map(|n| match n {
                1 => stamp.to_owned(),
                n => format!("{stamp}-{n}"),
            })
            .find_map(|id| {
                let dir = base.join(&id);
                match fs::create_dir(&dir) {
                    Ok(()) => Some(Ok((id, dir))),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(Error::io(format!("creating {}", dir.display()), e))),
                }
            })
            .expect("an unbounded search ends")?;
        // Relative, so the folder can be moved or copied whole; made aside and renamed over
        // the old link, so `latest` always names a complete folder name.
        let latest = base.join("latest");
        let staged = base.join(format!(".latest-{id}"));
        std::os::unix::fs::symlink(&id, &staged)
            .and_then(|()| fs::rename(&staged, &latest))
            .map_err(|e| Error::io(format!("linking {}", latest.display()), e))?;
        let open = |name: &str| {
            let path = dir.join(name);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))
        };
        // The header is written here, so a run that ends before its first row still leaves
        // a valid CSV; rows then go without a header of their own.
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(open("results.csv")?);
        csv.write_record(Row::columns())
            .and_then(|()| csv.flush().map_err(csv::Error::from))
            .map_err(|source| Error::Csv {
                what: "writing results.csv".to_owned(),
                source,
            })?;
        let mut json = BufWriter::new(open("results.json")?);
        json.write_all(b"[\n]\n")
            .and_then(|()| json.flush())
            .map_err(|e| Error::io("writing results.json", e))?;
        Ok(Self {
            dir,
            id,
            csv,
            json,
            rows: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's id (its folder name), written into every row.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends one row to both files and flushes them.
    pub fn write(&mut self, row: &Row) -> Result<()> {
        let csv_err = |source| Error::Csv {
            what: "writing results.csv".to_owned(),
            source,
        };
        self.csv.serialize(row).map_err(csv_err)?;
        self.csv
            .flush()
            .map_err(|e| Error::io("writing results.csv", e))?;
        // The array is closed after every row: step back over "]\n", append, close again.
        let text = serde_json::to_string(row).map_err(|source| Error::Json {
            what: "writing results.json",
            source,
        })?;
        let sep = if self.rows == 0 { "" } else { ",\n" };
        let json = &mut self.json;
        json.seek(SeekFrom::End(-2))
            .and_then(|_| write!(json, "{sep}{text}\n]\n"))
            .and_then(|()| json.flush())
            .map_err(|e| Error::io("writing results.json", e))?;
        self.rows += 1;
        Ok(())
    }
}

/// Writes points.csv: one line per grid point, its primary figure's mean and interval, how
/// many runs it took and whether it converged.
pub fn write_points(path: &Path, summary: &summary::Summary) -> Result<()> {
    let err = |source| Error::Csv {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    for p in &summary.points {
        w.serialize(summary::PointLine::of(p)).map_err(err)?;
    }
    w.flush()
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads the rows of a results.csv back.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let err = |source| Error::Csv {
        what: format!("reading {}", path.display()),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(err)?;
    reader.deserialize().collect::<Result<_, _>>().map_err(err)
}

/// Hands every file under `dir` to the user who ran `sudo`, so results are not root's.
pub fn give_to_invoking_user(dir: &Path) {
    let ids = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let (Some(uid), Some(gid)) = (ids("SUDO_UID"), ids("SUDO_GID")) else {
        return;
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let _ = std::os::unix::fs::lchown(&path, Some(uid), Some(gid));
        if let Ok(entries) = fs::read_dir(&path) {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runs that pick the same name keep both their folders and files.
    #[test]
    fn a_second_run_with_the_same_name_gets_its_own_folder() {
        let base = std::env::temp_dir().join(format!("netcopy-unique-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let first = ResultsDir::create_named(&base, "2026-01-01T00-00-00.000Z").unwrap();
        let second = ResultsDir::create_named(&base, "2026-01-01T00-00-00.000Z").unwrap();
        assert_eq!(first.id(), "2026-01-01T00-00-00.000Z");
        assert_eq!(second.id(), "2026-01-01T00-00-00.000Z-2");
        for run in [&first, &second] {
            let csv = fs::read_to_string(run.dir().join("results.csv")).unwrap();
            assert!(csv.starts_with("run,"), "{csv}");
        }
        assert_eq!(
            fs::read_link(base.join("latest")).unwrap(),
            Path::new("2026-01-01T00-00-00.000Z-2")
        );
        let _ = fs::remove_dir_all(&base);
    }
}
