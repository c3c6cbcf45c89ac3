// The page: settings from the form (or the query string), a run with live progress,
// plots and the summary table, the JSON download, and the automation hook
// (/?autorun=1&pings=N&mode=pong|loopback sets window.echoBenchResult when done).

import { BenchError, runBenchmark } from "./bench.js";
import { drawCdf, drawTimeline } from "./plot.js";

const KEY_STORAGE = "echoAgent.apiKey";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

let controller = null;
let lastRecord = null;

function fill() {
  $("server").value = params.get("server") || location.origin;
  const stored = localStorage.getItem(KEY_STORAGE);
  $("key").value = params.get("key") ?? stored ?? "";
  $("remember").checked = stored !== null;
  for (const [param, id] of [
    ["mode", "mode"],
    ["pings", "pings"],
    ["interval", "interval"],
    ["timeout", "timeout"],
    ["bursts", "bursts"],
    ["burst_interval", "burst-interval"],
  ]) {
    if (params.has(param)) $(id).value = params.get(param);
  }
  syncMode();
}

function syncMode() {
  $("audio-settings").disabled = $("mode").value !== "loopback";
}

function settings() {
  const number = (id) => Number($(id).value);
  return {
    server: $("server").value.trim(),
    key: $("key").value.trim(),
    mode: $("mode").value,
    pings: number("pings"),
    intervalMs: number("interval"),
    timeoutMs: number("timeout"),
    bursts: number("bursts"),
    burstIntervalMs: number("burst-interval"),
    // For automation only: how long to wait for the bot to answer and for audio (ms).
    joinTimeoutMs: Number(params.get("join_timeout")) || 30000,
  };
}

const fmt = (value, digits = 2, unit = " ms") =>
  value === null || value === undefined ? "–" : `${value.toFixed(digits)}${unit}`;

function renderSummary(summary) {
  const rows = [
    ["Sent", summary.sent],
    ["Received", summary.received],
    ["Lost", `${summary.lost} (${fmt(summary.loss_pct, 1, " %")})`],
    ["Late / duplicate pongs", `${summary.late} / ${summary.duplicates}`],
    ["RTT p50", fmt(summary.rtt_ms.p50)],
    ["RTT p95", fmt(summary.rtt_ms.p95)],
    ["RTT p99", fmt(summary.rtt_ms.p99)],
    ["RTT min / mean / max", `${fmt(summary.rtt_ms.min)} / ${fmt(summary.rtt_ms.mean)} / ${fmt(summary.rtt_ms.max)}`],
    ["Jitter", fmt(summary.jitter_ms)],
    ["Server processing p50", fmt(summary.server_processing_ms.p50, 3)],
    ["/connect → first pong", fmt(summary.connect_to_first_pong_ms, 0)],
  ];
  if (summary.audio) {
    const a = summary.audio;
    rows.push(
      ["Bursts sent / detected / missed", `${a.bursts} / ${a.detected} / ${a.missed}`],
      ["Audio round trip p50", fmt(a.latency_ms.p50, 1)],
      ["Audio round trip p95 / p99", `${fmt(a.latency_ms.p95, 1)} / ${fmt(a.latency_ms.p99, 1)}`],
      ["Audio round trip min / max", `${fmt(a.latency_ms.min, 1)} / ${fmt(a.latency_ms.max, 1)}`],
      ["Received / sent level", `${fmt(a.received_level_dbfs, 1, " dBFS")} / ${fmt(a.sent_level_dbfs, 1, " dBFS")}`],
    );
  }
  const body = $("summary").tBodies[0];
  body.replaceChildren(
    ...rows.map(([name, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = name;
      td.textContent = String(value);
      tr.append(th, td);
      return tr;
    }),
  );
}

/** What automation reads: the summary's figures (times in ms). */
function resultOf(record) {
  const s = record.summary;
  const result = {
    sent: s.sent,
    received: s.received,
    lost: s.lost,
    loss_pct: s.loss_pct,
    late: s.late,
    duplicates: s.duplicates,
    rtt_ms: s.rtt_ms,
    jitter_ms: s.jitter_ms,
    server_processing_ms: s.server_processing_ms,
    connect_to_first_pong_ms: s.connect_to_first_pong_ms,
    mode: record.params.mode,
    session_id: record.session_id,
    cross_origin_isolated: record.cross_origin_isolated,
  };
  if (s.audio) {
    result.audio_rtt_ms = s.audio.latency_ms;
    result.bursts = { sent: s.audio.bursts, detected: s.audio.detected, missed: s.audio.missed };
    result.received_level_dbfs = s.audio.received_level_dbfs;
  }
  return result;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function start() {
  const options = settings();
  if (!options.server) return;
  if ($("remember").checked && options.key) localStorage.setItem(KEY_STORAGE, options.key);
  if (!$("remember").checked) localStorage.removeItem(KEY_STORAGE);
  controller = new AbortController();
  showError("");
  lastRecord = null;
  window.echoBenchResult = undefined;
  window.echoBenchError = undefined;
  $("start").disabled = true;
  $("stop").disabled = false;
  $("download").disabled = true;
  $("progress").value = 0;

  const samples = [];
  const rtts = [];
  let redraw = false;
  const scheduleDraw = () => {
    if (redraw) return;
    redraw = true;
    requestAnimationFrame(() => {
      redraw = false;
      drawTimeline($("timeline"), samples, options.pings);
      drawCdf($("cdf"), rtts);
    });
  };
  const seen = new Set();
  try {
    const record = await runBenchmark(
      { ...options, signal: controller.signal, audioElement: $("remote-audio") },
      {
        onStatus: (text) => {
          $("status").textContent = text;
        },
        onProgress: (done, total) => {
          $("progress").max = total;
          $("progress").value = done;
        },
        onPing: (sample) => {
          if (seen.has(sample.seq)) return;
          seen.add(sample.seq);
          samples.push(sample);
          if (sample.rtt_ms !== null) rtts.push(sample.rtt_ms);
          scheduleDraw();
        },
      },
    );
    lastRecord = record;
    drawTimeline($("timeline"), record.samples, options.pings);
    drawCdf($("cdf"), record.samples.filter((s) => s.rtt_ms !== null).map((s) => s.rtt_ms));
    renderSummary(record.summary);
    $("progress").value = $("progress").max;
    $("download").disabled = false;
    window.echoBenchResult = resultOf(record);
  } catch (error) {
    const message = error instanceof BenchError ? error.message : `${error.name}: ${error.message}`;
    $("status").textContent = message === "stopped" ? "Stopped." : "Failed.";
    if (message !== "stopped") showError(message);
    window.echoBenchError = message;
  } finally {
    $("start").disabled = false;
    $("stop").disabled = true;
    controller = null;
  }
}

function download() {
  if (!lastRecord) return;
  const blob = new Blob([JSON.stringify(lastRecord, null, 2)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const stamp = lastRecord.date.replace(/[:.]/g, "-");
  link.download = `echo-bench-browser-${lastRecord.params.mode}-${stamp}.json`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  fill();
  drawTimeline($("timeline"), [], Number($("pings").value));
  drawCdf($("cdf"), []);
  $("mode").addEventListener("change", syncMode);
  $("settings").addEventListener("submit", (event) => {
    event.preventDefault();
    start();
  });
  $("stop").addEventListener("click", () => controller?.abort());
  $("download").addEventListener("click", download);
  if (params.get("autorun") === "1") start();
});
