// Two plots on canvases, drawn by hand (no chart library): the round trip of every ping
// over the run (lost pings as red crosses), and the CDF of the round trips with p50/p95/p99.

import { percentile } from "./stats.js";

const COLORS = { line: "#2563eb", lost: "#dc2626", grid: "#e5e7eb", text: "#374151" };
const PAD = { left: 52, right: 12, top: 12, bottom: 34 };

function setup(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  return { ctx, width, height };
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function axes(ctx, width, height, xMax, yMax, xLabel, yLabel, yTicks = 4) {
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  ctx.strokeStyle = COLORS.grid;
  ctx.fillStyle = COLORS.text;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= yTicks; i++) {
    const y = PAD.top + plotH - (i / yTicks) * plotH;
    ctx.beginPath();
    ctx.moveTo(PAD.left, y);
    ctx.lineTo(PAD.left + plotW, y);
    ctx.stroke();
    const value = (i / yTicks) * yMax;
    ctx.fillText(Number.isInteger(value) ? String(value) : value.toFixed(2), PAD.left - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let i = 0; i <= 4; i++) {
    const x = PAD.left + (i / 4) * plotW;
    const value = (i / 4) * xMax;
    ctx.fillText(Number.isInteger(value) ? String(value) : value.toFixed(1), x, PAD.top + plotH + 4);
  }
  ctx.fillText(xLabel, PAD.left + plotW / 2, height - 14);
  ctx.save();
  ctx.translate(12, PAD.top + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  return {
    x: (v) => PAD.left + (v / xMax) * plotW,
    y: (v) => PAD.top + plotH - (Math.min(v, yMax) / yMax) * plotH,
  };
}

/** Round trip (ms) per ping over the run; lost pings as red crosses at the top. */
export function drawTimeline(canvas, samples, total) {
  const { ctx, width, height } = setup(canvas);
  const rtts = samples.filter((s) => s.rtt_ms !== null).map((s) => s.rtt_ms);
  const yMax = niceMax(rtts.length ? percentile(rtts, 99.5) * 1.1 : 1);
  const scale = axes(ctx, width, height, Math.max(total, 1), yMax, "ping #", "RTT (ms)");
  for (const s of samples) {
    const x = scale.x(s.seq);
    if (s.rtt_ms === null) {
      if (s.status === "pending") continue;
      ctx.strokeStyle = COLORS.lost;
      const y = scale.y(yMax);
      ctx.beginPath();
      ctx.moveTo(x - 3, y - 3);
      ctx.lineTo(x + 3, y + 3);
      ctx.moveTo(x + 3, y - 3);
      ctx.lineTo(x - 3, y + 3);
      ctx.stroke();
    } else {
      ctx.fillStyle = COLORS.line;
      ctx.fillRect(x - 1.5, scale.y(s.rtt_ms) - 1.5, 3, 3);
    }
  }
}

/** The CDF of the round trips (ms), with p50, p95 and p99 marked. */
export function drawCdf(canvas, values, label = "RTT (ms)") {
  const { ctx, width, height } = setup(canvas);
  const sorted = Float64Array.from(values).sort();
  const xMax = niceMax(sorted.length ? sorted[sorted.length - 1] * 1.05 : 1);
  const scale = axes(ctx, width, height, xMax, 1, label, "fraction");
  if (!sorted.length) return;
  ctx.strokeStyle = COLORS.line;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(scale.x(sorted[0]), scale.y(0));
  sorted.forEach((v, i) => {
    ctx.lineTo(scale.x(v), scale.y(i / sorted.length));
    ctx.lineTo(scale.x(v), scale.y((i + 1) / sorted.length));
  });
  ctx.stroke();
  ctx.lineWidth = 1;
  ctx.setLineDash([4, 3]);
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  for (const [q, color] of [
    [50, "#16a34a"],
    [95, "#d97706"],
    [99, "#dc2626"],
  ]) {
    const v = percentile(values, q);
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(scale.x(v), scale.y(0));
    ctx.lineTo(scale.x(v), scale.y(1));
    ctx.stroke();
    ctx.fillText(`p${q} ${v.toFixed(2)}`, scale.x(v) + 3, scale.y(q === 50 ? 0.3 : q === 95 ? 0.55 : 0.8));
  }
  ctx.setLineDash([]);
}
