"""Checks what a notebook's figures sent back to Python (the files `--save DIR` wrote).

    python python/tests/check_results.py DIR GEONOISE_BIN EXPECT_JSON

EXPECT_JSON: {"toy": {"dim": D, "n": N, "models": [...]}, "images": {"n": N, "models": [...]}}.
Toy panels: the samples have the asked shape, and `geonoise metrics` on the same samples gives the
figure's metrics. Image panels: the shape, and the residual-noise metric recomputed in numpy.
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
        for key in images["models"]:
            doc = json.loads((folder / f"fashion-mnist-{key}.json").read_text())
            assert doc["shape"] == [images["n"], 28, 28], f"{key}: images of shape {doc['shape']}"
            x = np.asarray(doc["samples"], dtype=np.float64).reshape(doc["shape"])
            lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
            mine = float(np.mean(np.mean(lap**2, axis=(1, 2))))
            close(mine, float(doc["metrics"]["laplacian_energy"]), f"{key} laplacian_energy", rel=1e-6)
            assert doc["verdict"] and "confident_share" in doc["verdict"], f"{key}: no classifier verdict: {doc['verdict']}"
            report[f"fashion-mnist-{key}"] = {"shape": doc["shape"], "laplacian_energy": mine, "confident_share": doc["verdict"]["confident_share"]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
