//! Stop anywhere, resume exactly, through the CLI: `geonoise train` and `geonoise images train`
//! killed (SIGKILL) at random moments, then started again, end with the weights of a run that
//! never stopped; every state file a kill leaves behind is whole, and no restart goes back to
//! step 0.

use burn::tensor::Device;
use geonoise::checkpoint;
use geonoise::image::store;
use geonoise::image::unet::UNet;
use geonoise::params::weights;
use geonoise::resume::RunState;
use geonoise::rng::Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geonoise-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn geonoise(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_geonoise"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// Runs `args` to the end; panics with its stderr if it fails.
fn run(args: &[&str]) {
    let out = geonoise(args).output().unwrap();
    assert!(out.status.success(), "geonoise {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Starts `args` again and again, killing each start after a random delay, until one finishes on
/// its own. After each kill the state file (if any yet) must read whole, at a step no earlier
/// than the last. Returns how many starts were killed.
fn kill_until_done(args: &[&str], state: &Path, of: &str, seed: u64) -> usize {
    let mut rng = Rng::new(seed);
    let mut last = 0;
    let mut kills = 0;
    for _ in 0..200 {
        let mut child = geonoise(args).stderr(Stdio::null()).spawn().unwrap();
        let wait = Duration::from_millis(30 + (rng.uniform() * 250.0) as u64);
        std::thread::sleep(wait);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "a start after {kills} kills failed: {status}");
                return kills;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
        if state.exists() {
            let st = RunState::decode(&std::fs::read(state).unwrap(), of).unwrap_or_else(|e| panic!("after kill {kills}, {}: {e}", state.display()));
            assert!(st.step >= last, "after kill {kills} the state went back from step {last} to {}", st.step);
            last = st.step;
        }
    }
    panic!("the run did not finish in 200 starts");
}

fn toy_weights(path: &Path) -> Vec<u32> {
    let (m, _) = checkpoint::load(&std::fs::read(path).unwrap(), &Device::flex(), &checkpoint::Expected::any()).unwrap();
    weights(&m.net).into_values().flat_map(|d| d.try_to_vec::<f32>().unwrap()).map(f32::to_bits).collect()
}

#[test]
fn geonoise_train_killed_and_resumed_ends_with_the_weights_of_an_unbroken_run() {
    let dir = tmp("toy");
    let p = |f: &str| dir.join(f).display().to_string();
    let common = ["train", "--model", "ddpm", "--blind", "--dim", "6", "--width", "32", "--depth", "2", "--steps", "2000", "--batch", "64", "--lr", "3e-3", "--log-every", "1", "--save-every", "0", "--eval-samples", "0"];
    let args = |out: &str, extra: &[&str]| [&common[..], &["--out", out], extra].concat().iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let straight = p("straight.safetensors");
    run(&args(&straight, &[]).iter().map(String::as_str).collect::<Vec<_>>());

    // The first start makes the state; every later one goes on from it (--resume).
    let broken = p("broken.safetensors");
    let state = dir.join("broken.state");
    let first = args(&broken, &[]);
    let mut child = geonoise(&first.iter().map(String::as_str).collect::<Vec<_>>()).spawn().unwrap();
    while !state.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Started again without --resume, it refuses to overwrite the state.
    let again = geonoise(&first.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds the state of a run; add --resume"), "{}", String::from_utf8_lossy(&again.stderr));
    let resumed = args(&broken, &["--resume"]);
    let kills = kill_until_done(&resumed.iter().map(String::as_str).collect::<Vec<_>>(), &state, checkpoint::FORMAT, 1);
    eprintln!("geonoise train: {kills} kills after the first");
    assert!(kills >= 5, "the run was killed only {kills} times: the test did not test");
    assert_eq!(toy_weights(Path::new(&straight)), toy_weights(Path::new(&broken)), "the resumed run's weights differ from the unbroken run's");
    // A state of another run is refused by name.
    let other: Vec<&str> = common.iter().map(|a| if *a == "32" { "16" } else { a }).chain(["--out", &broken, "--resume"]).collect();
    let e = geonoise(&other).output().unwrap();
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("broken.state: it is the state of another run (model:"), "{}", String::from_utf8_lossy(&e.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

/// IDX files of `n` 8 x 8 images (a bright square each) and their labels, as `images train`
/// reads a data set.
fn tiny_data(dir: &Path, n: usize) {
    let mut rng = Rng::new(4);
    let mut images = vec![0, 0, 8, 3];
    images.extend((n as u32).to_be_bytes());
    images.extend(8u32.to_be_bytes());
    images.extend(8u32.to_be_bytes());
    for _ in 0..n {
        let (r, c) = (rng.below(6), rng.below(6));
        images.extend((0..64).map(|i| if (r..r + 3).contains(&(i / 8)) && (c..c + 3).contains(&(i % 8)) { 255u8 } else { 0 }));
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    labels.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
}

fn unet_weights(path: &Path) -> Vec<u32> {
    let loaded = store::load::<UNet>(&std::fs::read(path).unwrap(), &Device::flex()).unwrap();
    weights(&loaded.net).into_values().flat_map(|d| d.try_to_vec::<f32>().unwrap()).map(f32::to_bits).collect()
}

#[test]
fn images_train_killed_dozens_of_times_always_resumes_and_ends_as_an_unbroken_run() {
    let dir = tmp("images");
    tiny_data(&dir, 64);
    let data = dir.display().to_string();
    let p = |f: &str| dir.join(f).display().to_string();
    let common = ["images", "train", "--model", "fm", "--blind", "--channels", "4", "--mults", "1", "--side", "8", "--patch", "2", "--steps", "2000", "--batch", "8", "--ema", "0.9", "--save-every", "1", "--log-every", "1", "--precision", "f32", "--data-dir", &data];
    let straight = p("straight.safetensors");
    run(&[&common[..], &["--out", &straight]].concat());
    let broken = p("broken.safetensors");
    let state = dir.join("broken.state");
    let kills = kill_until_done(&[&common[..], &["--out", &broken]].concat(), &state, "geonoise-unet", 2);
    eprintln!("geonoise images train: {kills} kills");
    assert!(kills >= 24, "the run was killed only {kills} times: the test did not test");
    assert_eq!(unet_weights(Path::new(&straight)), unet_weights(Path::new(&broken)), "the resumed run's EMA weights differ from the unbroken run's");
    std::fs::remove_dir_all(&dir).ok();
}
