# /// script
# dependencies = ["geonoise", "marimo", "numpy"]
# ///
# Blind vs noise-conditioned models, in a marimo notebook: the regimes at D = 2, 32 and 512 (the
# lifted circles: FM Blind lands on the circles at every D, DDPM Blind's samples stay noisy as D
# grows) and the image comparison (Fashion-MNIST, or MNIST), each a geonoise figure whose samples
# come back to Python when it ends.
#
#   pip install ./python marimo        (after ./build.sh notebook)
#   marimo edit python/examples/blind_vs_cond.py
#   marimo run python/examples/blind_vs_cond.py -- --dims 8 --samples 200 --backend cpu --save out/
#
# Arguments after `--`: --dims (comma separated), --samples, --steps, --backend (auto, webgpu,
# cpu), --images (fashion-mnist, mnist, or 0 for none; 1 is fashion-mnist: the image figure's data
# set), --image-steps, --save DIR (each finished
# run's samples as `geonoise sample` writes them, which `geonoise metrics --samples` reads).
import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import json
    import pathlib

    import marimo as mo
    import numpy as np

    import geonoise

    return geonoise, json, mo, np, pathlib


@app.cell
def _(mo):
    args = mo.cli_args()
    dims = [int(d) for d in str(args.get("dims", "2,32,512")).split(",")]
    n = int(args.get("samples", 1000))
    steps = args.get("steps")
    backend = str(args.get("backend", "auto"))
    # The image figure's data set: "fashion-mnist" (also "1"), "mnist", or None ("0").
    images = {"1": "fashion-mnist", "0": None}.get(str(args.get("images", "1")), str(args.get("images")))
    image_steps = args.get("image-steps")
    save = args.get("save")
    mo.md(
        f"""
        # Blind vs conditional, in a notebook

        Each figure samples the shipped checkpoints in this browser tab ({backend} backend) with
        the page's own engine. FM Blind never sees the noise level and still lands on the data;
        DDPM Blind amplifies its errors near the data, more so as D grows. When a figure ends, its
        samples are numpy arrays in Python: the cells below read them.
        """
    )
    return backend, dims, image_steps, images, n, save, steps


@app.cell
def _(mo):
    # How many figure runs have ended: each figure's callback bumps it, and the cells that read it
    # run again with the samples that just arrived.
    get_ended, set_ended = mo.state(0)
    return get_ended, set_ended


@app.cell
def _(backend, dims, geonoise, image_steps, images, mo, n, set_ended, steps):
    toy = {
        d: geonoise.Figure(models=["fm-blind", "ddpm-blind"], dim=d, samples=n, steps=None if steps is None else int(steps), backend=backend, autoplay=True)
        for d in dims
    }
    pictures = geonoise.Figure(data=images, models=["fm-blind", "ddpm-blind"], samples=16, steps=None if image_steps is None else int(image_steps), backend=backend, autoplay=True) if images else None
    for _fig in [*toy.values(), *([pictures] if pictures is not None else [])]:
        _fig.on_result(lambda _f: set_ended(lambda k: k + 1))
    mo.vstack([*(mo.vstack([mo.md(f"## D = {d}"), mo.ui.anywidget(f)]) for d, f in toy.items()), *([mo.md(f"## {'MNIST' if images == 'mnist' else 'Fashion-MNIST'}"), mo.ui.anywidget(pictures)] if pictures is not None else [])])
    return pictures, toy


@app.cell
def _(get_ended, mo, np, toy):
    get_ended()  # runs again whenever a figure ends
    _r_inner, _r_outer = 2 / np.sqrt(5), 4 / np.sqrt(5)  # the two circles' radii
    _rows = []
    for _d, _fig in toy.items():
        for _key, _u in _fig.samples.items():
            # The data lie on two circles in a 2-D plane of R^D: a sample's distance from them
            # is | |u| - r | for the nearer radius (|u| measures the off-plane noise too).
            _norm = np.linalg.norm(_u, axis=1)
            _err = np.minimum(abs(_norm - _r_inner), abs(_norm - _r_outer))
            _rows.append({"D": _d, "model": _key, "samples": _u.shape[0], "median | |u| - r |": float(np.median(_err)), "within 0.1": float(np.mean(_err < 0.1)), "page's radial error (median)": _fig.metrics[_key]["radial_error_median"]})
    mo.ui.table(_rows) if _rows else mo.md("_The table fills in as the figures end._")
    return


@app.cell
def _(get_ended, mo, np, pictures):
    get_ended()
    _lines = []
    for _key, _x in (pictures.samples.items() if pictures is not None else []):
        _x = _x.astype(np.float64)
        # Residual noise: the mean squared discrete Laplacian, as the page's metric computes it.
        _lap = 4 * _x[:, 1:-1, 1:-1] - _x[:, :-2, 1:-1] - _x[:, 2:, 1:-1] - _x[:, 1:-1, :-2] - _x[:, 1:-1, 2:]
        _lines.append(f"- **{_key}**: {_x.shape[0]} images of {_x.shape[1]}×{_x.shape[2]}; Laplacian energy {np.mean(_lap**2):.4g} (the page: {pictures.metrics[_key]['laplacian_energy']:.4g})")
    mo.md("\n".join(_lines)) if _lines else mo.md("_The image numbers appear when their figure ends._")
    return


@app.cell
def _(json, pathlib, pictures, save, toy):
    # --save DIR: every finished run's samples, in `geonoise sample`'s format for the toy.
    def _write(fig):
        out = pathlib.Path(save)
        out.mkdir(parents=True, exist_ok=True)
        for key, arr in fig.samples.items():
            tag = f"d{fig.dim}-{key}" if fig.data == "toy" else f"{fig.data}-{key}"
            if fig.data != "toy":
                doc = {"model": key, "shape": list(arr.shape), "metrics": fig.metrics[key], "verdict": fig.results[key].get("verdict"), "samples": arr.reshape(arr.shape[0], -1).tolist()}
            else:
                doc = fig.samples_json(key)
            (out / f"{tag}.json").write_text(json.dumps(doc))

    if save:
        for _fig in [*toy.values(), *([pictures] if pictures is not None else [])]:
            _fig.on_result(_write)
    return


if __name__ == "__main__":
    app.run()
