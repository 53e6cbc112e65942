"""Checks what a notebook's figures sent back to Python (the files `--save DIR` wrote).

    python python/tests/check_results.py DIR GEONOISE_BIN EXPECT_JSON

EXPECT_JSON: {"toy": {"dim": D, "n": N, "models": [...]},
              "images": {"data": "fashion-mnist" or "mnist", "n": N, "steps": S, "models": [...]}}.
Toy panels: the samples have the asked shape, and `geonoise metrics` on the same samples gives the
figure's metrics. Image panels: the shape, the residual-noise metric recomputed in numpy, the
classifier's class names (the data set's), and with "steps" the samples equal `geonoise images
sample` of the data set's shipped checkpoint (ancestral, seed 0).
Prints one JSON line of what it compared; exits non-zero on the first mismatch.
"""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np


def close(a, b, what, rel=1e-5):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        assert a == b or (a is None and b is None) or (math.isnan(a) and math.isnan(b)), f"{what}: {a} vs {b}"
        return
    assert abs(a - b) <= rel * max(1.0, abs(b)), f"{what}: figure {a} vs geonoise metrics {b}"


def main():
    folder, cli, expect = pathlib.Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    report = {}
    toy = expect.get("toy")
    if toy:
        for key in toy["models"]:
            f = folder / f"d{toy['dim']}-{key}.json"
            doc = json.loads(f.read_text())
            u = np.asarray(doc["samples"], dtype=np.float64)
            assert u.shape == (toy["n"], toy["dim"]), f"{key}: samples of shape {u.shape}, not {(toy['n'], toy['dim'])}"
            native = json.loads(subprocess.run([cli, "metrics", "--samples", str(f)], check=True, capture_output=True, text=True).stdout)
            compared = 0
            for name, value in doc["metrics"].items():
                if isinstance(value, (int, float)) and name in native:
                    close(float(value), float(native[name]), f"{key} {name}")
                    compared += 1
            assert compared >= 3, f"{key}: only {compared} metrics in common: {sorted(doc['metrics'])} vs {sorted(native)}"
            report[f"d{toy['dim']}-{key}"] = {"shape": list(u.shape), "metrics_compared": compared, "radial_error_median": native.get("radial_error_median")}
    images = expect.get("images")
    if images:
        data = images.get("data", "fashion-mnist")
        repo = pathlib.Path(__file__).resolve().parents[2]
        shipped = repo / "pretrained/images" / ("mnist" if data == "mnist" else "")
        for key in images["models"]:
            doc = json.loads((folder / f"{data}-{key}.json").read_text())
            assert doc["shape"] == [images["n"], 28, 28], f"{key}: images of shape {doc['shape']}"
            x = np.asarray(doc["samples"], dtype=np.float64).reshape(doc["shape"])
            lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
            mine = float(np.mean(np.mean(lap**2, axis=(1, 2))))
            close(mine, float(doc["metrics"]["laplacian_energy"]), f"{key} laplacian_energy", rel=1e-6)
            assert doc["verdict"] and "confident_share" in doc["verdict"], f"{key}: no classifier verdict: {doc['verdict']}"
            digits = [str(k) for k in range(10)]
            assert (doc["verdict"]["names"] == digits) == (data == "mnist"), f"{key}: the classifier's classes are {doc['verdict']['names']}, on {data}"
            entry = {"shape": doc["shape"], "laplacian_energy": mine, "confident_share": doc["verdict"]["confident_share"]}
            if images.get("steps"):
                out = folder / f"native-{data}-{key}.json"
                subprocess.run([cli, "images", "sample", "--checkpoint", str(shipped / f"{key}.safetensors"), "--n", str(images["n"]), "--steps", str(images["steps"]), "--sampler", "ancestral", "--seed", "0", "--out", str(out)], check=True, capture_output=True)
                native = np.asarray(json.loads(out.read_text())["samples"], dtype=np.float64).reshape(doc["shape"])
                worst = float(np.max(np.abs(x - native) / (1 + np.abs(native))))
                assert worst <= 1e-3, f"{key}: the figure's samples differ from geonoise images sample of {shipped / key}.safetensors by {worst}"
                entry["largest_difference_from_cli"] = worst
            report[f"{data}-{key}"] = entry
    print(json.dumps(report))


if __name__ == "__main__":
    main()
