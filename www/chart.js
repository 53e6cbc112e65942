// The Train tab's loss chart: one canvas, a curve per training run, step on x, loss on a log y
// axis with decade ticks. Plain canvas 2-D; redraws from the stored points, so resizing or
// adding a point never accumulates state on the canvas.

const PAD = { left: 56, right: 12, top: 10, bottom: 30 };

export class LossChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.series = new Map(); // id -> {label, color, points: [[step, loss]]}
    this.maxStep = 1;
    this.draw();
  }

  /** Starts (or empties) the curve `id`. */
  reset(id, label, color) {
    this.series.set(id, { label, color, points: [] });
    this.draw();
  }

  clear() {
    this.series.clear();
    this.draw();
  }

  setMaxStep(steps) {
    this.maxStep = Math.max(1, steps);
    this.draw();
  }

  /** Drops the points of `id` past `step` (a run that went back to saved weights). */
  truncate(id, step) {
    const s = this.series.get(id);
    if (s) s.points = s.points.filter(([k]) => k <= step);
    this.draw();
  }

  add(id, step, loss) {
    const s = this.series.get(id);
    if (!s || !Number.isFinite(loss) || loss <= 0) return;
    s.points.push([step, loss]);
    this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    const [w, h] = [canvas.width, canvas.height];
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const all = [...this.series.values()].flatMap((s) => s.points.map((p) => p[1]));
    let lo = all.length ? Math.floor(Math.log10(Math.min(...all))) : -2;
    let hi = all.length ? Math.ceil(Math.log10(Math.max(...all))) : 0;
    if (hi <= lo) hi = lo + 1;
    const x = (step) => PAD.left + (step / this.maxStep) * (w - PAD.left - PAD.right);
    const y = (loss) => PAD.top + ((hi - Math.log10(loss)) / (hi - lo)) * (h - PAD.top - PAD.bottom);

    // Axes, decade grid and labels.
    ctx.strokeStyle = "#e4e4e4";
    ctx.fillStyle = "#555";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let e = lo; e <= hi; e++) {
      const yy = y(10 ** e);
      ctx.beginPath();
      ctx.moveTo(PAD.left, yy);
      ctx.lineTo(w - PAD.right, yy);
      ctx.stroke();
      ctx.fillText(`1e${e}`, PAD.left - 6, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let i = 0; i <= 4; i++) {
      const step = Math.round((i / 4) * this.maxStep);
      ctx.fillText(String(step), x(step), h - PAD.bottom + 6);
    }
    ctx.strokeStyle = "#888";
    ctx.beginPath();
    ctx.moveTo(PAD.left, PAD.top);
    ctx.lineTo(PAD.left, h - PAD.bottom);
    ctx.lineTo(w - PAD.right, h - PAD.bottom);
    ctx.stroke();
    ctx.save();
    ctx.translate(12, (h - PAD.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("loss", 0, 0);
    ctx.restore();

    // Curves and legend.
    let legend = PAD.left + 10;
    for (const s of this.series.values()) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      s.points.forEach(([step, loss], i) => (i ? ctx.lineTo(x(step), y(loss)) : ctx.moveTo(x(step), y(loss))));
      ctx.stroke();
      ctx.lineWidth = 1;
      ctx.fillStyle = s.color;
      ctx.fillRect(legend, PAD.top + 4, 14, 3);
      ctx.fillStyle = "#333";
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      const last = s.points.length ? ` ${s.points[s.points.length - 1][1].toPrecision(3)}` : "";
      const text = `${s.label}${last}`;
      ctx.fillText(text, legend + 18, PAD.top + 6);
      legend += 30 + ctx.measureText(text).width;
    }
  }
}
