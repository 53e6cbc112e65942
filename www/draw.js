// The Draw view's canvas: the person draws points or strokes in the plane, or sees the shape
// they picked. Knows the DOM, nothing about the engine.
import { EXTENT, planePoint, toPixel, drawPoints, clearPlane } from "./view.js";

/** Along a stroke, a new point is kept once it is this far (plane units) from the last. */
const SPACING = 0.06;

export class DrawView {
  /** `onChange(points)`: a stroke ended; `points` is the whole drawing ([[x, y], …], plane
   *  units, clamped to the plotted square). */
  constructor(canvas, { onChange }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.points = [];
    this.preview = null; // a picked shape's points (flat), drawn in gray
    this.stroke = null;
    const at = (e) => planePoint(canvas, e).map((v) => Math.min(EXTENT, Math.max(-EXTENT, v)));
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture?.(e.pointerId);
      this.stroke = [at(e)];
      this.points.push(this.stroke[0]);
      this.draw();
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!this.stroke) return;
      const p = at(e);
      const last = this.stroke[this.stroke.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) < SPACING) return;
      this.stroke.push(p);
      this.points.push(p);
      this.drawPoint(p); // one more square: a long stroke must not redraw every point each move
    });
    const end = () => {
      if (!this.stroke) return;
      this.stroke = null;
      onChange(this.points.slice());
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  /** The drawing to show (and to add strokes to). */
  setPoints(points) {
    this.points = points.slice();
    this.draw();
  }

  /** A picked shape's points (flat, as the core normalised them), or null. */
  setPreview(flat) {
    this.preview = flat;
    this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    const w = canvas.width;
    clearPlane(ctx, w);
    ctx.strokeStyle = "#e2e2e2";
    ctx.beginPath();
    ctx.moveTo(w / 2, 0);
    ctx.lineTo(w / 2, w);
    ctx.moveTo(0, w / 2);
    ctx.lineTo(w, w / 2);
    ctx.stroke();
    if (this.preview) drawPoints(ctx, w, this.preview, "#9a9a9a", 2.5);
    for (const p of this.points) this.drawPoint(p);
  }

  drawPoint([x, y]) {
    const w = this.canvas.width;
    this.ctx.fillStyle = "#c0392b";
    this.ctx.fillRect(toPixel(x, w) - 2.5, toPixel(-y, w) - 2.5, 5, 5);
  }
}
