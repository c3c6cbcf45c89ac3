// Statistics and tone-burst detection of the benchmark page, the same as echo-bench's
// (echo_bench/stats.py and echo_bench/bursts.py): percentiles by linear interpolation
// (numpy's default), population stdev, jitter as the mean |difference| of consecutive
// round trips, bursts found by a sustained threshold crossing.

export const SAMPLE_RATE = 48000;
export const BURST_HZ = 1000;
export const BURST_SECS = 0.04;
export const BURST_AMPLITUDE = 0.5;
const RAMP_SECS = 0.002;
const THRESHOLD = 0.2; // a sample is "burst" at this fraction of the burst's received peak
const MIN_LEVEL = 0.05; // received below this fraction of the sent amplitude (-26 dB): missed
const SUSTAIN_SECS = 0.005;
const SUSTAIN_FRACTION = 0.3; // an onset must be followed by this share of loud samples

/** The q-th percentile (0-100) of `values`, linear between closest ranks; null if empty. */
export function percentile(values, q) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  const h = ((sorted.length - 1) * q) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** min, mean, p50, p95, p99, max and population stdev of `values` (nulls if empty). */
export function describe(values) {
  if (!values.length) {
    return { min: null, mean: null, p50: null, p95: null, p99: null, max: null, stdev: null };
  }
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  return {
    min: values.reduce((a, b) => Math.min(a, b)),
    mean,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: values.reduce((a, b) => Math.max(a, b)),
    stdev: Math.sqrt(variance),
  };
}

/** Mean |RTT(i) - RTT(i-1)| over round trips in send order; null with fewer than two. */
export function jitter(rtts) {
  if (rtts.length < 2) return null;
  let sum = 0;
  for (let i = 1; i < rtts.length; i++) sum += Math.abs(rtts[i] - rtts[i - 1]);
  return sum / (rtts.length - 1);
}

/** RFC 3550's running estimate J += (|D| - J) / 16 after the last round trip. */
export function jitterRfc3550(rtts) {
  if (rtts.length < 2) return null;
  let estimate = 0;
  for (let i = 1; i < rtts.length; i++) {
    estimate += (Math.abs(rtts[i] - rtts[i - 1]) - estimate) / 16;
  }
  return estimate;
}

/** One tone burst (float samples, -1..1) with raised-cosine ramps: no click at either end. */
export function burstWaveform(
  frequency = BURST_HZ,
  duration = BURST_SECS,
  amplitude = BURST_AMPLITUDE,
  sampleRate = SAMPLE_RATE,
) {
  const n = Math.round(duration * sampleRate);
  const ramp = Math.round(RAMP_SECS * sampleRate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let envelope = 1;
    const edge = Math.min(i, n - 1 - i);
    if (edge < ramp) envelope = 0.5 - 0.5 * Math.cos((Math.PI * edge) / ramp);
    out[i] = amplitude * envelope * Math.sin((2 * Math.PI * frequency * i) / sampleRate);
  }
  return out;
}

/**
 * Index of the first sample of a burst in `samples`, or null: the first sample whose
 * magnitude reaches `threshold` and is followed, over 5 ms, by at least 30 % that do too.
 */
export function detectOnset(samples, threshold, sampleRate = SAMPLE_RATE) {
  const n = samples.length;
  const window = Math.max(1, Math.round(SUSTAIN_SECS * sampleRate));
  const counts = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) counts[i + 1] = counts[i] + (Math.abs(samples[i]) >= threshold);
  if (counts[n] === 0) return null;
  for (let i = 0; i < n; i++) {
    if (Math.abs(samples[i]) < threshold) continue;
    const end = Math.min(n, i + window);
    if (counts[end] - counts[i] >= SUSTAIN_FRACTION * window) return i;
  }
  return null;
}

/** RMS level in dB relative to full scale; null for no samples or silence. */
export function levelDbfs(samples) {
  if (!samples.length) return null;
  let sum = 0;
  for (const x of samples) sum += x * x;
  const rms = Math.sqrt(sum / samples.length);
  return rms > 0 ? 20 * Math.log10(rms) : null;
}

/** A burst signal and how to find it again in received audio. */
export class BurstDetector {
  constructor(frequency = BURST_HZ, duration = BURST_SECS, amplitude = BURST_AMPLITUDE) {
    this.burst = burstWaveform(frequency, duration, amplitude);
    this.amplitude = amplitude;
    // Where detection finds the clean burst: subtracted, so the detector's own delay
    // does not count as round trip.
    this.onsetOffset = detectOnset(this.burst, THRESHOLD * amplitude) ?? 0;
    const clean = this.burst.subarray(this.onsetOffset, this.burst.length - this.onsetOffset);
    this.sentLevelDbfs = levelDbfs(clean);
  }

  /**
   * Where the burst starts in `samples` (received audio), or null. The threshold follows
   * the level received (99.5th percentile of the magnitudes), so attenuation on the way
   * does not move the onset along the burst's ramp.
   */
  find(samples) {
    if (!samples.length) return null;
    const magnitudes = Float32Array.from(samples, Math.abs);
    const peak = percentile(magnitudes, 99.5);
    if (peak < MIN_LEVEL * this.amplitude) return null;
    return detectOnset(samples, THRESHOLD * peak);
  }

  /** {onset, level} of a burst in `samples`: onset index corrected by the detector delay. */
  analyse(samples) {
    const onset = this.find(samples);
    if (onset === null) return null;
    const body = samples.subarray(onset, onset + this.burst.length - 2 * this.onsetOffset);
    return { onset: onset - this.onsetOffset, level: levelDbfs(body) };
  }
}

/** The figures of one ping run; times in ms. `samples` are in send order. */
export function summarizePings(samples, { late = 0, duplicates = 0, unexpected = 0 } = {}) {
  const received = samples.filter((s) => s.rtt_ms !== null);
  const rtts = received.map((s) => s.rtt_ms);
  const processing = received
    .filter((s) => s.server_processing_ms !== null)
    .map((s) => s.server_processing_ms);
  const sent = samples.length;
  return {
    sent,
    received: rtts.length,
    lost: sent - rtts.length,
    loss_pct: sent ? (100 * (sent - rtts.length)) / sent : null,
    late,
    duplicates,
    unexpected,
    rtt_ms: describe(rtts),
    jitter_ms: jitter(rtts),
    jitter_rfc3550_ms: jitterRfc3550(rtts),
    server_processing_ms: {
      p50: percentile(processing, 50),
      p99: percentile(processing, 99),
      count: processing.length,
    },
  };
}

/** Bursts sent, detected and missed, their round trips (ms) and levels. */
export function summarizeBursts(bursts, detector) {
  const latencies = bursts.filter((b) => b.latency_ms !== null).map((b) => b.latency_ms);
  const levels = bursts.filter((b) => b.level_dbfs !== null).map((b) => b.level_dbfs);
  return {
    bursts: bursts.length,
    detected: latencies.length,
    missed: bursts.length - latencies.length,
    latency_ms: describe(latencies),
    received_level_dbfs: levels.length ? levels.reduce((a, b) => a + b, 0) / levels.length : null,
    sent_level_dbfs: detector.sentLevelDbfs,
  };
}
