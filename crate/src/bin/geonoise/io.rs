//! What every command shares: the result type, file and JSON I/O, the one-line metrics summary,
//! the grid's manifest on disk, and the `--data` argument.

use geonoise::dataset::{DataSpec, Shape};
use geonoise::metrics::Metrics;
use geonoise::pretrained::Manifest;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) type Res<T> = Result<T, String>;

/// The command as a person would type it (`geonoise …`, whatever path ran the binary): what a
/// results file records.
pub(crate) fn command_line() -> String {
    std::iter::once("geonoise".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
}

pub(crate) fn emit(value: &Value, pretty: bool) {
    let s = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) }.unwrap();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
}

pub(crate) fn read_file(path: &PathBuf) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub(crate) fn write_file(path: &PathBuf, bytes: &[u8]) -> Res<()> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn rows(v: &[f32], cols: usize) -> Vec<Vec<f32>> {
    v.chunks(cols).map(|r| r.to_vec()).collect()
}

pub(crate) fn summary_metrics(m: &Metrics) -> String {
    format!(
        "clean {:.1}%, radial error mean {:.4} median {:.4} p90 {:.4}, off-manifold mean {:.4} median {:.4}, inner {:.2}, MMD {:.5}, diverged {:.1}%",
        100.0 * m.clean_fraction,
        m.radial_error_mean,
        m.radial_error_median,
        m.radial_error_p90,
        m.off_manifold_mean,
        m.off_manifold_median,
        m.inner_fraction,
        m.mmd,
        100.0 * m.diverged_fraction
    )
}

/// A JSON number, with `null` (how non-finite values are written) read back as NaN.
pub(crate) fn num(v: &Value) -> Res<f32> {
    match v {
        Value::Null => Ok(f32::NAN),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
        other => Err(format!("expected a number, found {other}")),
    }
}

pub(crate) fn matrix(v: &Value, what: &str) -> Res<(Vec<f32>, usize)> {
    let arr = v.as_array().ok_or(format!("'{what}' must be an array of rows"))?;
    let mut out = vec![];
    let mut cols = None;
    for (i, row) in arr.iter().enumerate() {
        let r = row.as_array().ok_or(format!("'{what}' row {i} is not an array"))?;
        if *cols.get_or_insert(r.len()) != r.len() {
            return Err(format!("'{what}' row {i} has {} values, row 0 has {}", r.len(), cols.unwrap()));
        }
        for x in r {
            out.push(num(x).map_err(|e| format!("'{what}' row {i}: {e}"))?);
        }
    }
    Ok((out, cols.unwrap_or(0)))
}

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Res<()> {
    write_file(&manifest_path(dir), serde_json::to_string_pretty(manifest).unwrap().as_bytes())
}

pub(crate) fn read_manifest(dir: &Path) -> Res<Option<Manifest>> {
    let p = manifest_path(dir);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    Manifest::parse(&text).map(Some)
}

/// The 2-D data set lifted into R^D.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct DataArg {
    /// The data set: a shape (circles, three-rings, spiral, swiss-roll, checkerboard, two-moons)
    /// or a JSON file of drawn points ({"points": [[x, y], …]}, e.g. the page's Draw export).
    /// The circles by default.
    #[arg(long = "data")]
    data: Option<String>,
}

impl DataArg {
    pub(crate) fn spec(&self) -> Res<DataSpec> {
        let Some(v) = &self.data else { return Ok(DataSpec::default()) };
        if let Ok(name) = Shape::from_name(v) {
            return Ok(DataSpec::Shape { name });
        }
        let path = PathBuf::from(v);
        if !path.exists() {
            return Err(format!("--data {v}: neither a shape ({}) nor a file", Shape::ALL.map(|s| s.name()).join(", ")));
        }
        let json: Value = serde_json::from_slice(&read_file(&path)?).map_err(|e| format!("{v}: not valid JSON: {e}"))?;
        DataSpec::from_json(&json).map_err(|e| format!("{v}: {e}"))
    }

    pub(crate) fn given(&self) -> bool {
        self.data.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_arg_reads_a_shape_or_a_file_of_points_and_names_what_it_wanted() {
        let arg = |v: &str| DataArg { data: Some(v.to_string()) }.spec();
        assert_eq!(DataArg::default().spec().unwrap(), DataSpec::default());
        assert_eq!(arg("spiral").unwrap(), DataSpec::Shape { name: Shape::Spiral });
        let dir = std::env::temp_dir().join(format!("geonoise-data-arg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        // The page's export, a bare list, and a samples file's config all read.
        let want = DataSpec::Points { points: vec![[0.0, 1.0], [2.0, 3.0]] };
        assert_eq!(arg(&file("a.json", r#"{"points": [[0, 1], [2, 3]]}"#)).unwrap(), want);
        assert_eq!(arg(&file("b.json", "[[0, 1], [2, 3]]")).unwrap(), want);
        assert_eq!(arg(&file("c.json", r#"{"config": {"data": {"kind": "points", "points": [[0, 1], [2, 3]]}}, "samples": []}"#)).unwrap(), want);
        assert!(arg(&file("g.json", r#"{"samples": []}"#)).unwrap_err().contains("a data set is {\"points\": [[x, y], …]}"));
        assert!(arg(&file("d.json", r#"{"points": [[0, 1]]}"#)).unwrap_err().contains("at least 2 points"));
        assert!(arg(&file("e.json", r#"{"points": [[0, 1], [2]]}"#)).unwrap_err().contains("data point 1"));
        assert!(arg(&file("f.json", "not json")).unwrap_err().contains("not valid JSON"));
        assert!(arg("moons").unwrap_err().contains("neither a shape (circles, three-rings, spiral"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
