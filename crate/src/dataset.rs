//! The 2-D data set the toy lifts into R^D, as a value: the paper's concentric circles, other
//! named shapes, or any list of points (a drawing). The theory holds for any discrete data set on
//! a low-dimensional subspace; only the data changes.
//!
//! Every data set is normalised as the circles are: centred, and scaled so that each coordinate
//! has unit second moment (`E ||x||^2 = 2`), like the unit-variance noise it is mixed with. The
//! circles are defined normalised (their radii, `data.rs`) and are used exactly as before.
//!
//! A shape is made of pieces, each with a share of the mass: circles (exact), polylines (mass
//! uniform along the arc length) and filled rectangles (uniform over the area). From the pieces
//! come the training samples ([`DataSet::sample`]), the evenly spread set the closed form uses
//! ([`DataSet::discrete`]) and the distance of a point to the data ([`DataSet::distance`]),
//! which the metrics call the radial error (for the circles it is exactly that). A drawn set is
//! its points: it samples them uniformly, is its own discrete set, and a point's distance is to
//! the nearest of them.

use crate::data::{discrete_circles_2d, sample_circles_2d, R_INNER, R_OUTER};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Fewest and most points a drawn data set may have.
pub const MIN_POINTS: usize = 2;
pub const MAX_POINTS: usize = 4096;
/// Largest coordinate a drawn point may have before normalisation.
pub const MAX_COORD: f64 = 1e6;

/// The named shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum Shape {
    /// The paper's two concentric circles (radii 1:2, half the mass on each).
    Circles,
    /// Three concentric rings, radii 1:2:3, a third of the mass on each.
    ThreeRings,
    /// Two interleaved spiral arms.
    Spiral,
    /// The swiss roll seen from its end: one thick-turned spiral that leaves out the centre.
    SwissRoll,
    /// A 4 x 4 checkerboard, mass uniform over its eight dark squares.
    Checkerboard,
    /// Two interleaved half circles.
    TwoMoons,
}

impl Shape {
    pub const ALL: [Shape; 6] = [Shape::Circles, Shape::ThreeRings, Shape::Spiral, Shape::SwissRoll, Shape::Checkerboard, Shape::TwoMoons];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Circles => "circles",
            Shape::ThreeRings => "three-rings",
            Shape::Spiral => "spiral",
            Shape::SwissRoll => "swiss-roll",
            Shape::Checkerboard => "checkerboard",
            Shape::TwoMoons => "two-moons",
        }
    }

    pub fn from_name(name: &str) -> Result<Shape, String> {
        Shape::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| format!("unknown data shape '{name}': use one of {}", Shape::ALL.map(|s| s.name()).join(", ")))
    }

    /// The shape's pieces before normalisation.
    fn pieces(self) -> Vec<Piece> {
        let arc = |f: &dyn Fn(f64) -> (f64, f64), n: usize| -> Vec<(f64, f64)> { (0..=n).map(|i| f(i as f64 / n as f64)).collect() };
        match self {
            Shape::Circles => vec![Piece::circle(R_INNER, 0.5), Piece::circle(R_OUTER, 0.5)],
            Shape::ThreeRings => (1..=3).map(|r| Piece::circle(r as f64, 1.0 / 3.0)).collect(),
            Shape::Spiral => (0..2)
                .map(|arm| {
                    let phase = PI * arm as f64;
                    let pts = arc(&|s| {
                        let th = 0.5 * PI + 3.0 * PI * s;
                        (th * (th + phase).cos(), th * (th + phase).sin())
                    }, 256);
                    Piece::polyline(pts, 0.5)
                })
                .collect(),
            Shape::SwissRoll => vec![Piece::polyline(
                arc(&|s| {
                    let th = 1.5 * PI + 3.0 * PI * s;
                    (th * th.cos(), th * th.sin())
                }, 384),
                1.0,
            )],
            Shape::Checkerboard => {
                let mut out = vec![];
                for i in 0..4 {
                    for j in 0..4 {
                        if (i + j) % 2 == 0 {
                            let (x0, y0) = (i as f64 - 2.0, j as f64 - 2.0);
                            out.push(Piece::Rect { x0, y0, x1: x0 + 1.0, y1: y0 + 1.0, mass: 1.0 / 8.0 });
                        }
                    }
                }
                out
            }
            Shape::TwoMoons => vec![
                Piece::polyline(arc(&|s| ((PI * s).cos(), (PI * s).sin()), 128), 0.5),
                Piece::polyline(arc(&|s| (1.0 - (PI * s).cos(), 0.5 - (PI * s).sin()), 128), 0.5),
            ],
        }
    }
}

/// One part of a shape, with its share of the mass.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    /// A circle about the origin.
    Circle { r: f64, mass: f64 },
    /// A curve through these points, mass uniform along its length; `cum` the length up to each.
    Polyline { pts: Vec<(f64, f64)>, cum: Vec<f64>, mass: f64 },
    /// A filled axis-aligned rectangle.
    Rect { x0: f64, y0: f64, x1: f64, y1: f64, mass: f64 },
}

impl Piece {
    fn circle(r: f64, mass: f64) -> Piece {
        Piece::Circle { r, mass }
    }

    fn polyline(pts: Vec<(f64, f64)>, mass: f64) -> Piece {
        let mut cum = vec![0.0];
        for w in pts.windows(2) {
            cum.push(cum.last().unwrap() + ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt());
        }
        Piece::Polyline { pts, cum, mass }
    }

    fn mass(&self) -> f64 {
        match self {
            Piece::Circle { mass, .. } | Piece::Polyline { mass, .. } | Piece::Rect { mass, .. } => *mass,
        }
    }

    /// The piece's mean and mean squared norm under its own (unit) mass, exactly.
    fn moments(&self) -> ((f64, f64), f64) {
        match self {
            Piece::Circle { r, .. } => ((0.0, 0.0), r * r),
            Piece::Polyline { pts, cum, .. } => {
                let total = *cum.last().unwrap();
                let (mut mx, mut my, mut m2) = (0.0, 0.0, 0.0);
                for (k, w) in pts.windows(2).enumerate() {
                    let len = cum[k + 1] - cum[k];
                    let ((ax, ay), (bx, by)) = (w[0], w[1]);
                    mx += len * (ax + bx) / 2.0;
                    my += len * (ay + by) / 2.0;
                    // The mean of |a + s (b - a)|^2 over s in [0, 1].
                    m2 += len * (ax * ax + ay * ay + ax * bx + ay * by + bx * bx + by * by) / 3.0;
                }
                ((mx / total, my / total), m2 / total)
            }
            Piece::Rect { x0, y0, x1, y1, .. } => {
                let sq = |a: f64, b: f64| (a * a + a * b + b * b) / 3.0;
                (((x0 + x1) / 2.0, (y0 + y1) / 2.0), sq(*x0, *x1) + sq(*y0, *y1))
            }
        }
    }

    /// The point a fraction `s` (in [0, 1)) of the way along the piece; for a rectangle, `s` and
    /// `v` place it in the area.
    fn at(&self, s: f64, v: f64) -> (f64, f64) {
        match self {
            Piece::Circle { r, .. } => (r * (2.0 * PI * s).cos(), r * (2.0 * PI * s).sin()),
            Piece::Polyline { pts, cum, .. } => {
                let target = s * cum.last().unwrap();
                let k = cum.partition_point(|&c| c <= target).clamp(1, pts.len() - 1);
                let len = cum[k] - cum[k - 1];
                let w = if len > 0.0 { (target - cum[k - 1]) / len } else { 0.0 };
                (pts[k - 1].0 + w * (pts[k].0 - pts[k - 1].0), pts[k - 1].1 + w * (pts[k].1 - pts[k - 1].1))
            }
            Piece::Rect { x0, y0, x1, y1, .. } => (x0 + s * (x1 - x0), y0 + v * (y1 - y0)),
        }
    }

    /// The largest norm of a point of the piece, exactly: the norm is convex, so on a segment or
    /// a rectangle it peaks at a vertex.
    fn max_norm(&self) -> f64 {
        let norm = |(x, y): (f64, f64)| (x * x + y * y).sqrt();
        match self {
            Piece::Circle { r, .. } => *r,
            Piece::Polyline { pts, .. } => pts.iter().map(|&p| norm(p)).fold(0.0, f64::max),
            Piece::Rect { x0, y0, x1, y1, .. } => [(*x0, *y0), (*x0, *y1), (*x1, *y0), (*x1, *y1)].into_iter().map(norm).fold(0.0, f64::max),
        }
    }

    /// The distance from `p` to the piece (0 inside a rectangle).
    fn distance(&self, p: (f64, f64)) -> f64 {
        match self {
            Piece::Circle { r, .. } => ((p.0 * p.0 + p.1 * p.1).sqrt() - r).abs(),
            Piece::Polyline { pts, .. } => pts.windows(2).map(|w| segment_distance(p, w[0], w[1])).fold(f64::INFINITY, f64::min),
            Piece::Rect { x0, y0, x1, y1, .. } => {
                let dx = (x0 - p.0).max(p.0 - x1).max(0.0);
                let dy = (y0 - p.1).max(p.1 - y1).max(0.0);
                (dx * dx + dy * dy).sqrt()
            }
        }
    }

    /// The piece moved by `-centre` and divided by `scale`.
    fn normalised(&self, centre: (f64, f64), scale: f64) -> Piece {
        let f = |(x, y): (f64, f64)| ((x - centre.0) / scale, (y - centre.1) / scale);
        match self {
            Piece::Circle { r, mass } => Piece::Circle { r: r / scale, mass: *mass },
            Piece::Polyline { pts, mass, .. } => Piece::polyline(pts.iter().map(|&p| f(p)).collect(), *mass),
            Piece::Rect { x0, y0, x1, y1, mass } => {
                let (a, b) = (f((*x0, *y0)), f((*x1, *y1)));
                Piece::Rect { x0: a.0, y0: a.1, x1: b.0, y1: b.1, mass: *mass }
            }
        }
    }
}

fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let s = if len2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    ((p.0 - a.0 - s * dx).powi(2) + (p.1 - a.1 - s * dy).powi(2)).sqrt()
}

/// What a data set is, as it is written in a checkpoint's metadata and given on the command line
/// or in the page's URL: a named shape, or points (as given; normalised when used).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DataSpec {
    Shape { name: Shape },
    Points { points: Vec<[f64; 2]> },
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec::Shape { name: Shape::Circles }
    }
}

impl DataSpec {
    /// A data set from JSON: a spec as checkpoints write it (`{"kind": "shape", "name": …}` or
    /// `{"kind": "points", "points": …}`), `{"points": [[x, y], …]}`, a bare list of pairs, or
    /// any object holding one of those under `"data"` or `"config"."data"` (a model config, a
    /// samples file of `geonoise sample`).
    pub fn from_json(v: &serde_json::Value) -> Result<DataSpec, String> {
        if v.get("kind").is_some() {
            return serde_json::from_value(v.clone()).map_err(|e| format!("data set: {e}"));
        }
        if let Some(inner) = v.get("data").or_else(|| v.get("config").and_then(|c| c.get("data"))) {
            return DataSpec::from_json(inner);
        }
        let list = v.get("points").unwrap_or(v);
        let rows = list.as_array().ok_or("a data set is {\"points\": [[x, y], …]}, a list of [x, y] pairs, or a shape")?;
        let mut points = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            match r.as_array().map(|r| r.iter().map(|x| x.as_f64()).collect::<Vec<_>>()).as_deref() {
                Some([Some(x), Some(y)]) => points.push([*x, *y]),
                _ => return Err(format!("data point {i} is not a pair of numbers [x, y]: {r}")),
            }
        }
        let spec = DataSpec::Points { points };
        spec.build()?;
        Ok(spec)
    }

    pub fn is_circles(&self) -> bool {
        *self == DataSpec::default()
    }

    /// A short description: the shape's name, or "N drawn points".
    pub fn label(&self) -> String {
        match self {
            DataSpec::Shape { name } => name.name().to_string(),
            DataSpec::Points { points } => format!("{} drawn points", points.len()),
        }
    }

    /// Builds the data set, refusing a drawing it cannot use with a message that says why.
    pub fn build(&self) -> Result<DataSet, String> {
        match self {
            DataSpec::Shape { name: Shape::Circles } => Ok(DataSet { spec: self.clone(), kind: Kind::Circles }),
            DataSpec::Shape { name } => Ok(DataSet { spec: self.clone(), kind: Kind::Pieces(normalise_pieces(name.pieces())) }),
            DataSpec::Points { points } => Ok(DataSet { spec: self.clone(), kind: Kind::Points(normalise_points(points)?) }),
        }
    }
}

/// A data set ready to use: sampled, discretised, measured against.
#[derive(Clone, Debug)]
pub struct DataSet {
    pub spec: DataSpec,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// The paper's circles, exactly as `data.rs` defines them.
    Circles,
    Pieces(Vec<Piece>),
    Points(Vec<(f64, f64)>),
}

fn normalise_pieces(pieces: Vec<Piece>) -> Vec<Piece> {
    let total: f64 = pieces.iter().map(Piece::mass).sum();
    let (mut mx, mut my, mut m2) = (0.0, 0.0, 0.0);
    for p in &pieces {
        let ((x, y), s) = p.moments();
        let w = p.mass() / total;
        mx += w * x;
        my += w * y;
        m2 += w * s;
    }
    let scale = ((m2 - mx * mx - my * my) / 2.0).sqrt();
    pieces.iter().map(|p| p.normalised((mx, my), scale)).collect()
}

/// Checks and normalises drawn points: centred, unit second moment per coordinate.
pub fn normalise_points(points: &[[f64; 2]]) -> Result<Vec<(f64, f64)>, String> {
    if points.len() < MIN_POINTS {
        return Err(format!("a drawn data set needs at least {MIN_POINTS} points; it has {}", points.len()));
    }
    if points.len() > MAX_POINTS {
        return Err(format!("a drawn data set may have at most {MAX_POINTS} points; it has {}", points.len()));
    }
    if let Some((i, p)) = points.iter().enumerate().find(|(_, p)| !(p[0].is_finite() && p[1].is_finite() && p[0].abs() <= MAX_COORD && p[1].abs() <= MAX_COORD)) {
        return Err(format!("point {i} ({}, {}) is not a finite coordinate pair within ±{MAX_COORD}", p[0], p[1]));
    }
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), p| (a + p[0] / n, b + p[1] / n));
    let var = points.iter().map(|p| (p[0] - mx).powi(2) + (p[1] - my).powi(2)).sum::<f64>() / n / 2.0;
    if var.sqrt() <= 1e-9 * (1.0 + mx.abs().max(my.abs())) {
        return Err("the drawn points are all at one place: a data set needs at least two distinct points".to_string());
    }
    let s = var.sqrt();
    Ok(points.iter().map(|p| ((p[0] - mx) / s, (p[1] - my) / s)).collect())
}

impl DataSet {
    pub fn circles() -> DataSet {
        DataSet { spec: DataSpec::default(), kind: Kind::Circles }
    }

    pub fn is_circles(&self) -> bool {
        matches!(self.kind, Kind::Circles)
    }

    /// `n` training points (rows of 2), drawn from `rng`.
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Vec<f32> {
        match &self.kind {
            Kind::Circles => sample_circles_2d(rng, n),
            Kind::Points(pts) => (0..n)
                .flat_map(|_| {
                    let p = pts[((rng.uniform() * pts.len() as f64) as usize).min(pts.len() - 1)];
                    [p.0 as f32, p.1 as f32]
                })
                .collect(),
            Kind::Pieces(pieces) => {
                let total: f64 = pieces.iter().map(Piece::mass).sum();
                let mut out = Vec::with_capacity(2 * n);
                for _ in 0..n {
                    let mut pick = rng.uniform() * total;
                    let piece = pieces.iter().find(|p| {
                        pick -= p.mass();
                        pick < 0.0
                    });
                    let piece = piece.unwrap_or(pieces.last().unwrap());
                    let (s, v) = (rng.uniform(), rng.uniform());
                    let (x, y) = piece.at(s, v);
                    out.push(x as f32);
                    out.push(y as f32);
                }
                out
            }
        }
    }

    /// The evenly spread discrete set of about `n` points (rows of 2) the closed form uses. A
    /// drawn set is its own points, whatever `n`.
    pub fn discrete(&self, n: usize) -> Vec<f32> {
        match &self.kind {
            Kind::Circles => discrete_circles_2d(n),
            Kind::Points(pts) => pts.iter().flat_map(|p| [p.0 as f32, p.1 as f32]).collect(),
            Kind::Pieces(pieces) => {
                let total: f64 = pieces.iter().map(Piece::mass).sum();
                // Each piece's share of the points, rounded so that they add up to n.
                let mut counts: Vec<usize> = pieces.iter().map(|p| (n as f64 * p.mass() / total).floor() as usize).collect();
                let mut k = 0;
                while counts.iter().sum::<usize>() < n {
                    counts[k % pieces.len()] += 1;
                    k += 1;
                }
                let mut out = Vec::with_capacity(2 * n);
                for (p, &c) in pieces.iter().zip(&counts) {
                    match p {
                        Piece::Rect { .. } => {
                            let side = (c as f64).sqrt().ceil() as usize;
                            for i in 0..c {
                                let (x, y) = p.at(((i % side) as f64 + 0.5) / side as f64, ((i / side) as f64 + 0.5) / side as f64);
                                out.extend([x as f32, y as f32]);
                            }
                        }
                        _ => {
                            for i in 0..c {
                                let (x, y) = p.at((i as f64 + 0.5) / c as f64, 0.0);
                                out.extend([x as f32, y as f32]);
                            }
                        }
                    }
                }
                out
            }
        }
    }

    /// The distance from a point of the plane to the data: to the nearer circle, to the shape's
    /// curve or area, or to the nearest drawn point.
    pub fn distance(&self, p: (f64, f64)) -> f64 {
        match &self.kind {
            Kind::Circles => {
                let r = (p.0 * p.0 + p.1 * p.1).sqrt();
                (r - R_INNER).abs().min((r - R_OUTER).abs())
            }
            Kind::Pieces(pieces) => pieces.iter().map(|q| q.distance(p)).fold(f64::INFINITY, f64::min),
            Kind::Points(pts) => pts.iter().map(|q| ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt()).fold(f64::INFINITY, f64::min),
        }
    }

    /// The largest norm of any data point (the circles: the outer radius).
    pub fn radius(&self) -> f64 {
        match &self.kind {
            Kind::Circles => R_OUTER,
            Kind::Points(pts) => pts.iter().map(|p| (p.0 * p.0 + p.1 * p.1).sqrt()).fold(0.0, f64::max),
            Kind::Pieces(pieces) => pieces.iter().map(Piece::max_norm).fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(x: &[f32]) -> (f64, f64, f64) {
        let n = (x.len() / 2) as f64;
        let (mut mx, mut my, mut m2) = (0.0, 0.0, 0.0);
        for p in x.chunks(2) {
            mx += p[0] as f64 / n;
            my += p[1] as f64 / n;
            m2 += ((p[0] as f64).powi(2) + (p[1] as f64).powi(2)) / n;
        }
        (mx, my, m2)
    }

    #[test]
    fn every_shape_is_centred_and_normalised_and_its_samples_lie_on_it() {
        for shape in Shape::ALL {
            let d = DataSpec::Shape { name: shape }.build().unwrap();
            let mut rng = Rng::new(3);
            let x = d.sample(&mut rng, 40_000);
            let (mx, my, m2) = moments(&x);
            assert!(mx.abs() < 0.03 && my.abs() < 0.03, "{shape:?}: mean ({mx}, {my})");
            assert!((m2 - 2.0).abs() < 0.05, "{shape:?}: E|x|^2 = {m2}");
            // Samples are on the shape; the discrete set too, and spread over all of it.
            let worst = x.chunks(2).map(|p| d.distance((p[0] as f64, p[1] as f64))).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{shape:?}: a sample {worst} off the shape");
            let disc = d.discrete(512);
            assert_eq!(disc.len(), 1024, "{shape:?}");
            assert!(disc.chunks(2).all(|p| d.distance((p[0] as f64, p[1] as f64)) < 1e-5), "{shape:?}");
            let (dx, dy, d2) = moments(&disc);
            assert!(dx.abs() < 0.03 && dy.abs() < 0.03 && (d2 - 2.0).abs() < 0.05, "{shape:?}: discrete moments ({dx}, {dy}, {d2})");
            // The radius is the largest norm of the shape: no dense point is beyond it, and some
            // come within a hair of it.
            let far_pt = d.discrete(4096).chunks(2).map(|p| ((p[0] as f64).powi(2) + (p[1] as f64).powi(2)).sqrt()).fold(0.0, f64::max);
            assert!(far_pt <= d.radius() + 1e-6 && far_pt > d.radius() - 0.05, "{shape:?}: {far_pt} vs {}", d.radius());
            // A point far out is about its own distance away, less at most the data's radius.
            let far = d.distance((100.0, 0.0));
            assert!(far >= 100.0 - d.radius() - 1e-9 && far <= 100.0 + d.radius(), "{shape:?}: {far}");
        }
    }

    #[test]
    fn circles_are_the_papers_exactly() {
        let d = DataSet::circles();
        let mut a = Rng::new(9);
        let mut b = Rng::new(9);
        assert_eq!(d.sample(&mut a, 100), sample_circles_2d(&mut b, 100));
        assert_eq!(d.discrete(64), discrete_circles_2d(64));
        assert_eq!(DataSpec::default().build().unwrap().discrete(10), discrete_circles_2d(10));
        // Distance to the nearer circle: the old radial error.
        assert!((d.distance((1.0, 0.0)) - (1.0 - R_INNER)).abs() < 1e-15);
        assert!((d.distance((0.0, 2.0)) - (2.0 - R_OUTER)).abs() < 1e-15);
        assert!((d.distance((0.0, 0.0)) - R_INNER).abs() < 1e-15);
        // So a sample diverges where it always did.
        assert_eq!(10.0 * d.radius(), crate::metrics::DIVERGED_NORM);
    }

    #[test]
    fn distance_functions_have_their_closed_forms() {
        // Three rings, normalised: radii r, 2r, 3r with (r^2 + 4 r^2 + 9 r^2) / 3 = 2.
        let d = DataSpec::Shape { name: Shape::ThreeRings }.build().unwrap();
        let r = (6.0f64 / 14.0).sqrt();
        assert!((d.distance((0.0, 0.0)) - r).abs() < 1e-12);
        assert!((d.distance((1.5 * r, 0.0)) - 0.5 * r).abs() < 1e-12);
        assert!((d.distance((0.0, 3.5 * r)) - 0.5 * r).abs() < 1e-12);
        // The checkerboard: eight dark unit squares on [-2, 2]^2, mean 0 and E x^2 = 4/3 per
        // coordinate, so a board unit becomes sqrt(3)/2. Inside the dark square [0, 1]^2 the
        // distance is 0; at the centre of the light square [1, 2] x [0, 1], half a unit.
        let c = DataSpec::Shape { name: Shape::Checkerboard }.build().unwrap();
        let unit = 3f64.sqrt() / 2.0;
        let board = |x: f64, y: f64| (x * unit, y * unit);
        assert!(c.distance(board(0.5, 0.5)) < 1e-12);
        assert!((c.distance(board(1.5, 0.5)) - 0.5 * unit).abs() < 1e-12, "{}", c.distance(board(1.5, 0.5)));
        // Off the board beside that light square: to the corners of the dark squares above and
        // below it.
        assert!((c.distance(board(2.5, 0.5)) - 0.5f64.sqrt() * unit).abs() < 1e-12);
        // Drawn points: the distance to the nearest. (0, 0) and (2, 0) normalise to (±sqrt 2, 0).
        let p = DataSpec::Points { points: vec![[0.0, 0.0], [2.0, 0.0]] }.build().unwrap();
        let r2 = 2f64.sqrt();
        assert!((p.distance((0.0, 0.0)) - r2).abs() < 1e-12);
        assert!((p.distance((r2, 1.0)) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn drawn_points_are_normalised_and_bad_drawings_are_refused() {
        let d = DataSpec::Points { points: vec![[10.0, 10.0], [12.0, 10.0], [11.0, 13.0]] }.build().unwrap();
        let (mx, my, m2) = moments(&d.discrete(0));
        assert!(mx.abs() < 1e-6 && my.abs() < 1e-6 && (m2 - 2.0).abs() < 1e-6, "({mx}, {my}, {m2})");
        let mut rng = Rng::new(0);
        let x = d.sample(&mut rng, 3000);
        assert!(x.chunks(2).all(|p| d.distance((p[0] as f64, p[1] as f64)) < 1e-6));
        let err = |pts: Vec<[f64; 2]>| DataSpec::Points { points: pts }.build().err().unwrap();
        assert!(err(vec![]).contains("at least 2 points"));
        assert!(err(vec![[1.0, 1.0]]).contains("at least 2 points"));
        assert!(err(vec![[1.0, 1.0]; 5]).contains("all at one place"));
        assert!(err(vec![[0.0, 0.0]; 10_000]).contains("at most 4096"));
        assert!(err(vec![[0.0, 0.0], [f64::NAN, 1.0]]).contains("point 1"));
        assert!(err(vec![[0.0, 0.0], [1e9, 1.0]]).contains("point 1"));
        // The spec round-trips through JSON as it is saved in a checkpoint.
        let spec = DataSpec::Points { points: vec![[0.5, 1.0], [2.0, -1.0]] };
        let back: DataSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(serde_json::to_string(&DataSpec::Shape { name: Shape::TwoMoons }).unwrap(), r#"{"kind":"shape","name":"two-moons"}"#);
        assert!(Shape::from_name("moons").is_err());
    }
}
