//! `geonoise oracle`: the closed-form field, posterior, energy and decomposition at given points;
//! and the oracle arguments `sample --oracle` shares.

use crate::io::{emit, matrix, read_file, DataArg, Res};
use burn::tensor::Device;
use geonoise::data::{host_tensor, Projection};
use geonoise::dataset::DataSet;
use geonoise::oracle::{self, Oracle};
use geonoise::sample::read_f32;
use geonoise::target::Parameterization;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub(crate) struct OracleArgs {
    /// Parameterization of the oracle field.
    #[arg(long = "model")]
    pub(crate) model: Option<Parameterization>,
    /// Ambient dimension D.
    #[arg(long = "dim")]
    pub(crate) dim: Option<usize>,
    /// The blind optimum f*(u) (sampling); the default is conditional f*(u, t).
    #[arg(long)]
    pub(crate) blind: bool,
    #[arg(long, conflicts_with = "blind")]
    pub(crate) conditional: bool,
    #[arg(long, default_value_t = 0)]
    pub(crate) projection_seed: u64,
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// How many points of the data set the closed form sums over (a drawn set: all of its own).
    #[arg(long, default_value_t = oracle::DEFAULT_POINTS)]
    pub(crate) data_points: usize,
    /// Noise levels in the quadrature grid.
    #[arg(long, default_value_t = oracle::DEFAULT_GRID)]
    pub(crate) grid: usize,
}

pub(crate) fn oracle_from(args: &OracleArgs, device: &Device) -> Res<(Oracle, Projection, bool, DataSet)> {
    let model = args.model.ok_or("--model is required for the oracle")?;
    let dim = args.dim.ok_or("--dim is required for the oracle")?;
    let proj = Projection::new(dim, args.projection_seed)?;
    let data = args.data.spec()?.build()?;
    let o = Oracle::for_data(model, model.default_range(), &proj, &data, args.data_points, args.grid, device)?;
    Ok((o, proj, args.blind, data))
}

pub(crate) fn cmd_oracle(args: OracleArgs, points: PathBuf, dev: &Device, pretty: bool) -> Res<()> {
    let text = read_file(&points)?;
    let input: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: not valid JSON: {e}", points.display()))?;
    let (o, proj, _, _) = oracle_from(&args, dev)?;
    let (vals, cols) = matrix(&input["points"], "points")?;
    if vals.is_empty() {
        return Err("'points' is empty".into());
    }
    let u = if cols == 2 && proj.dim != 2 {
        proj.lift(host_tensor(vals, 2, dev))
    } else if cols == proj.dim {
        host_tensor(vals, cols, dev)
    } else {
        return Err(format!("points have {cols} values per row; expected D = {} (or 2 for plane coordinates)", proj.dim));
    };
    let t = match &input["t"] {
        Value::Null => None,
        v => Some(v.as_f64().filter(|t| *t > 0.0).ok_or("'t' must be a positive number")?),
    };
    let an = o.analyze(u.clone());
    let m = u.dims()[0];
    let d = proj.dim;
    let k = o.grid.len();
    let post = read_f32(an.posterior);
    let col = |x: burn::tensor::Tensor<2>| read_f32(x);
    let (energy, gain, tm, ts) = (col(an.energy), col(an.gain), col(an.t_mean), col(an.t_std));
    let (field, grad, lin, gt, tr) = (col(an.field), col(an.grad_energy), col(an.linear_drift), col(an.gain_term), col(an.transport));
    let bhat = read_f32(oracle::geometric_noise_scale(u.clone(), &proj));
    let cond = t.map(|t| (read_f32(o.conditional_field(u.clone(), t)), read_f32(o.drift_error(u.clone(), t))));
    let xy = read_f32(proj.project(u));
    let mut out_points = vec![];
    for i in 0..m {
        let s = |v: &Vec<f32>| v[i * d..(i + 1) * d].to_vec();
        let mut p = json!({
            "xy": [xy[2 * i], xy[2 * i + 1]],
            "posterior": post[i * k..(i + 1) * k].to_vec(),
            "t_mean": tm[i], "t_std": ts[i],
            "b_geometric": bhat[i],
            "t_geometric": oracle::t_from_noise_scale(o.param, o.range, bhat[i] as f64),
            "energy": energy[i], "gain": gain[i],
            "field": s(&field), "grad_energy": s(&grad),
            "linear_drift": s(&lin), "gain_term": s(&gt), "transport": s(&tr),
        });
        if let Some((cf, de)) = &cond {
            p["conditional_field"] = json!(s(cf));
            p["drift_error"] = json!(de[i]);
        }
        out_points.push(p);
    }
    eprintln!("oracle {} D={}: {m} points, {k} grid levels, {} data points", o.param, d, args.data_points);
    emit(&json!({"model": o.param, "dim": d, "projection_seed": proj.seed, "t": t, "grid": o.grid, "points": out_points}), pretty);
    Ok(())
}
