//! The shipped checkpoints in `pretrained/`: every manifest entry loads into the current
//! architecture with the config the manifest states, and samples; two of them still meet the
//! metric bounds the manifest states when re-sampled.

use burn::tensor::Device;
use geonoise::checkpoint;
use geonoise::data::Projection;
use geonoise::metrics;
use geonoise::pretrained::{self, Manifest};
use geonoise::sample::{read_f32, SampleConfig, Sampler};
use geonoise::target::Parameterization;
use std::path::PathBuf;
use std::rc::Rc;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pretrained")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("pretrained/manifest.json is shipped");
    Manifest::parse(&text).unwrap()
}

#[test]
fn every_checkpoint_loads_matches_its_manifest_entry_and_samples() {
    let m = manifest();
    let device = Device::flex();
    assert!(!m.entries.is_empty());
    let mut total = 0;
    for e in &m.entries {
        let bytes = std::fs::read(dir().join(&e.file)).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        assert_eq!(bytes.len(), e.bytes, "{}: size differs from the manifest", e.file);
        total += bytes.len();
        let (model, header) = checkpoint::load(&bytes, &device, &checkpoint::Expected::config(&e.config.model)).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        assert_eq!(header.config, e.config.model, "{}", e.file);
        assert_eq!(header.training.as_ref().map(|t| &t.train), Some(&e.config), "{}", e.file);
        assert_eq!(e.file, pretrained::file_name(e.model, e.blind, e.dim));
        assert_eq!(e.config, m.recipe.train_config(e.model, e.blind, e.dim), "{}: not what the recipe makes", e.file);
        let proj = Projection::new(e.dim, e.config.model.projection_seed).unwrap();
        let out = read_f32(Sampler::new(Rc::new(model), SampleConfig { n: 16, steps: 5, ..Default::default() }, &proj, &device).unwrap().run());
        assert_eq!(out.len(), 16 * e.dim);
    }
    assert!(total <= 24 * 1024 * 1024, "pretrained/ holds {total} bytes of checkpoints, over the 24 MB budget");
}

#[test]
fn fm_cond_d32_and_fm_blind_d128_meet_their_stated_bounds() {
    let m = manifest();
    let device = Device::flex();
    for (blind, dim) in [(false, 32), (true, 128)] {
        let e = m.find(Parameterization::Fm, blind, dim).expect("entry in the manifest");
        let bytes = std::fs::read(dir().join(&e.file)).unwrap();
        let (model, _) = checkpoint::load(&bytes, &device, &checkpoint::Expected::any()).unwrap();
        let proj = Projection::new(dim, e.config.model.projection_seed).unwrap();
        let cfg = SampleConfig { n: 400, seed: 11, ..m.eval.clone() };
        let out = read_f32(Sampler::new(Rc::new(model), cfg, &proj, &device).unwrap().run());
        let got = metrics::compute(&out, &proj).unwrap();
        e.bounds.check(&got).unwrap_or_else(|err| panic!("{}: {err} (re-sampled {got:?})", e.file));
    }
}
