# A marimo notebook for the notebook tests (www/tests/notebook.test.mjs): one figure, broken as
# `-- --fault` says: "wasm" (the engine's core is garbage), "checkpoint" (FM Blind's checkpoint is
# garbage), "dim" (an attribute out of range); or "change": when its run at D = 8 ends, Python sets
# `fig.dim = 32`, and when that run ends it writes the samples' shapes to `--out`.
import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import json

    import marimo as mo

    import geonoise

    fault = mo.cli_args().get("fault")
    replace = {
        "wasm": {"pkg-cpu/geonoise_bg.wasm": b"this is not a wasm module"},
        "checkpoint": {"pretrained/fm-blind-d8.safetensors": b"this is not a checkpoint"},
    }.get(fault, {})
    fig = geonoise.Figure(dim=7 if fault == "dim" else 8, samples=50, steps=10, backend="cpu", autoplay=True, _replace_files=replace)

    def _changed(f):
        if f.dim == 8:
            f.dim = 32  # from Python: the figure in the page starts again at D = 32
        else:
            with open(mo.cli_args().get("out"), "w") as out:
                json.dump({"dim": f.dim, "runs": f.finished_runs, "shapes": {k: list(v.shape) for k, v in f.samples.items()}}, out)

    if fault == "change":
        fig.on_result(_changed)
    mo.ui.anywidget(fig)
    return


if __name__ == "__main__":
    app.run()
