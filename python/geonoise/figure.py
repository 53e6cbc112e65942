"""`Figure`: the page's `<geonoise-figure>` as an anywidget, its results back in Python.

The front end (``static/widget.js``, built from ``www/notebook.js`` by ``./build.sh notebook``) is
the page's own figure element and worker. It asks this object for the files it needs (the wasm
core, the checkpoints), which are sent from the package as message buffers: no server, no network.
When every panel has reached its last step, the front end sends each panel's final samples and
metrics, the numbers the page shows and ``geonoise metrics`` computes.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable

import anywidget
import numpy as np
import traitlets

_STATIC = pathlib.Path(__file__).parent / "static"


def static_dir() -> pathlib.Path:
    """The folder of the files the front end is given (built by ``./build.sh notebook``)."""
    return _STATIC


class Figure(anywidget.AnyWidget):
    """FM Blind against DDPM Blind (or any shipped models) sampling in the notebook.

    Keyword arguments are the figure element's attributes (see ``www/geonoise-figure.js``):
    ``models`` (list of "fm-blind", "ddpm-blind", "fm-cond", "ddpm-cond"; with
    ``data="fashion-mnist"`` also "eqm-blind", "uedm-blind"), ``dim`` (2, 8, 32, 128, 512),
    ``fields`` ("trained" or "exact"), ``data`` ("toy", "fashion-mnist" or "mnist"), ``sampler``
    ("euler", "heun", "ddim", "dpm2m", "ancestral", "sde"), ``time_grid`` ("default", "uniform", "rho7",
    "log-snr"), ``steps``, ``samples`` (trajectories, or images per panel), ``seed``, ``speed``,
    ``backend`` ("auto", "webgpu", "cpu") and ``autoplay``. Left as None, a setting takes the
    figure's default. Out-of-range values are shown in the figure, as on the page.

    After a run: ``samples[key]`` (float32 arrays, ``(n, dim)``; images ``(n, side, side)``),
    ``metrics[key]``, ``results[key]`` (everything else the page exports), and callbacks given to
    ``on_result`` are called. ``finished_runs`` counts the runs ended (a synced trait: a marimo
    cell that reads it through ``mo.ui.anywidget`` runs again when a run ends).
    """

    _esm = _STATIC / "widget.js"

    models = traitlets.List(traitlets.Unicode(), default_value=["fm-blind", "ddpm-blind"]).tag(sync=True)
    dim = traitlets.Int(32).tag(sync=True)
    fields = traitlets.Unicode("trained").tag(sync=True)
    data = traitlets.Unicode("toy").tag(sync=True)
    sampler = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    time_grid = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    steps = traitlets.Int(None, allow_none=True).tag(sync=True)
    samples_per_panel = traitlets.Int(None, allow_none=True).tag(sync=True)
    seed = traitlets.Int(0).tag(sync=True)
    speed = traitlets.Int(None, allow_none=True).tag(sync=True)
    backend = traitlets.Unicode("auto").tag(sync=True)
    autoplay = traitlets.Bool(False).tag(sync=True)
    finished_runs = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("")

    def __init__(self, *, samples: int | None = None, _replace_files: dict[str, bytes] | None = None, **kwargs: Any) -> None:
        if not (_STATIC / "widget.js").exists():
            raise RuntimeError(f"{_STATIC} has no widget.js: build the package's files with ./build.sh notebook before pip install ./python")
        if samples is not None:
            kwargs["samples_per_panel"] = samples
        super().__init__(**kwargs)
        self.samples: dict[str, np.ndarray] = {}
        self.metrics: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.error: str | None = None
        self._callbacks: list[Callable[[Figure], None]] = []
        self._replace = dict(_replace_files or {})
        self.on_msg(self._on_message)

    def play(self) -> None:
        """Presses the figure's Play button."""
        self.send({"type": "play"})

    def on_result(self, callback: Callable[["Figure"], None]) -> None:
        """Calls ``callback(figure)`` each time a run ends and its samples have arrived."""
        self._callbacks.append(callback)

    def samples_json(self, key: str) -> dict:
        """A panel's samples in the format ``geonoise sample`` writes (``geonoise metrics
        --samples`` reads it): a toy panel's only."""
        r = self.results[key]
        if "projection_seed" not in r:
            raise ValueError(f"{key} is an image panel; geonoise metrics reads toy samples")
        return {"source": {"notebook": key}, "config": r["config"], "sample": r["sample"], "dim": r["dim"], "projection_seed": r["projection_seed"], "metrics": r["metrics"], "samples": self.samples[key].tolist()}

    # --- the front end's messages ----------------------------------------------------------
    def _file(self, path: str) -> bytes | None:
        if path in self._replace:
            return self._replace[path]
        root = _STATIC.resolve()
        f = (root / path).resolve()
        if root not in f.parents or not f.is_file():
            return None
        return f.read_bytes()

    def _on_message(self, _widget: Any, content: dict, buffers: list) -> None:
        kind = content.get("type")
        if kind == "files":
            found, data, missing = [], [], []
            for p in content.get("paths", []):
                b = self._file(str(p))
                if b is None:
                    missing.append(p)
                else:
                    found.append(p)
                    data.append(b)
            self.send({"type": "files", "id": content.get("id"), "paths": found, "missing": missing}, buffers=data)
        elif kind == "status":
            self.status = str(content.get("text", ""))
            if content.get("error"):
                self.error = self.status
        elif kind == "result":
            self._take_result(content, buffers)

    def _take_result(self, content: dict, buffers: list) -> None:
        samples, results = {}, {}
        for key, buf in zip(content["keys"], buffers):
            r = content["models"][key]
            a = np.frombuffer(bytes(buf), dtype=np.float32).copy()
            side = r.get("side")
            samples[key] = a.reshape(-1, side, side) if side else a.reshape(-1, r["dim"])
            results[key] = r
        self.samples, self.results = samples, results
        self.metrics = {k: r.get("metrics") for k, r in results.items()}
        for cb in list(self._callbacks):
            cb(self)

    def __repr__(self) -> str:
        return f"Figure(models={list(self.models)}, dim={self.dim}, data={self.data!r}, runs={self.finished_runs})"


