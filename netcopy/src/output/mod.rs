//! Everything a run leaves behind, in `results/<timestamp>/`: the rows as CSV and JSON
//! (written and flushed one by one, so an interruption loses nothing finished), plots and a
//! report. Writers only read rows.

pub mod plots;
pub mod report;
pub mod summary;

use std::{
    fs::{self, File},
    io::{BufWriter, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
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
        Self::create_named(base, &utc_now(false))
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
            .map_err(|e| Error::io("writing results.csv", std::io::Error::other(e)))?;
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
        let csv_err = |e: csv::Error| Error::io("writing results.csv", std::io::Error::other(e));
        self.csv.serialize(row).map_err(csv_err)?;
        self.csv
            .flush()
            .map_err(|e| Error::io("writing results.csv", e))?;
        // The array is closed after every row: step back over "]\n", append, close again.
        let text = serde_json::to_string(row)
            .map_err(|e| Error::io("writing results.json", std::io::Error::other(e)))?;
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

/// The CSV column names of a flat row type, in order (what serde names its fields).
pub fn csv_columns<T: serde::Serialize + Default>() -> Vec<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(T::default()).expect("a flat row serializes");
    let bytes = w.into_inner().expect("in memory");
    let text = String::from_utf8(bytes).expect("utf-8");
    text.lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// Writes points.csv: one line per grid point, its primary figure's mean and interval, how
/// many runs it took and whether it converged.
pub fn write_points(path: &Path, summary: &summary::Summary) -> Result<()> {
    let err = |e: csv::Error| {
        Error::io(
            format!("writing {}", path.display()),
            std::io::Error::other(e),
        )
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
    let err = |e: csv::Error| {
        Error::io(
            format!("reading {}", path.display()),
            std::io::Error::other(e),
        )
    };
    let mut reader = csv::Reader::from_path(path).map_err(err)?;
    reader.deserialize().collect::<Result<_, _>>().map_err(err)
}

/// The time now, UTC, with milliseconds: `2026-11-24T05:50:12.345Z`, or, for a file name,
/// `2026-11-24T05-50-12.345Z`.
pub fn utc_now(colons: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (now.as_secs(), now.subsec_millis());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let sep = if colons { ':' } else { '-' };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}{sep}{:02}{sep}{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
