// The measurement: a session from POST /connect, the browser's own RTCPeerConnection
// offered to the session's offer_url, pings on a data channel and, in loopback mode,
// tone bursts played into the microphone track and found again in the echoed audio.
// The method is echo-bench's (README, "Method"); only the client is the browser.

import {
  BurstDetector,
  SAMPLE_RATE,
  summarizeBursts,
  summarizePings,
} from "./stats.js";

const PROBE_INTERVAL_MS = 100;
const LEAD_MS = 500; // silence between audio flowing back and the first burst
const ICE_GATHERING_MS = 2000; // then the offer goes out with what was gathered; the rest trickles
const AUDIO_CONTEXT_HINT =
  "The browser did not start audio (autoplay policy): click Start instead of autorun.";

export class BenchError extends Error {}

/** An API client that sends the key, if any, on every request. */
export class Api {
  constructor(server, key) {
    this.server = server.replace(/\/+$/, "");
    this.key = key || "";
  }

  url(path) {
    return new URL(path, this.server + "/").toString();
  }

  async request(method, url, body) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new BenchError(
        `${method} ${url}: ${error.message} (is the agent running, and does its CORS_ORIGINS ` +
          `list this page's origin ${location.origin}?)`,
      );
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : text.slice(0, 200);
      const hint = response.status === 401 ? " (enter the agent's API key)" : "";
      throw new BenchError(`${method} ${url}: HTTP ${response.status} ${detail}${hint}`);
    }
    return data;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new BenchError("stopped"));
    const timer = setTimeout(resolve, Math.max(0, ms));
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new BenchError("stopped"));
      },
      { once: true },
    );
  });

async function until(condition, ms, what, signal) {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new BenchError(`${what} within ${ms / 1000} s`);
    await sleep(10, signal);
  }
}

function waitForGathering(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** The audio side of a loopback run: a burst "microphone" and a recorder, one clock. */
class AudioLoop {
  constructor(context, recorder, detector) {
    this.context = context;
    this.detector = detector;
    this.destination = context.createMediaStreamDestination();
    this.destination.channelCount = 1;
    this.track = this.destination.stream.getAudioTracks()[0];
    // Silence between bursts: a destination with nothing connected sends no audio at all.
    this.silence = context.createConstantSource();
    this.silence.offset.value = 0;
    this.silence.connect(this.destination);
    this.silence.start();
    this.recorder = recorder;
    this.blocks = []; // {first, samples}: received audio by context frame
    this.receivedUntil = 0;
    this.remoteAttached = false;
    recorder.port.onmessage = ({ data }) => {
      this.blocks.push(data);
      this.receivedUntil = data.first + data.samples.length;
    };
    // The recorder is pulled by the graph only when it leads to the destination.
    const mute = context.createGain();
    mute.gain.value = 0;
    recorder.connect(mute).connect(context.destination);
    this.buffer = context.createBuffer(1, detector.burst.length, SAMPLE_RATE);
    this.buffer.copyToChannel(detector.burst, 0);
  }

  static async create(detector) {
    const context = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
    if (context.state !== "running") {
      await Promise.race([context.resume(), sleep(1000)]);
    }
    if (context.state !== "running") {
      await context.close();
      throw new BenchError(AUDIO_CONTEXT_HINT);
    }
    await context.audioWorklet.addModule(new URL("./recorder-worklet.js", import.meta.url));
    const recorder = new AudioWorkletNode(context, "echo-bench-recorder", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
    });
    return new AudioLoop(context, recorder, detector);
  }

  attachRemote(track, element) {
    if (this.remoteAttached) return;
    this.remoteAttached = true;
    const stream = new MediaStream([track]);
    // Chromium feeds a remote WebRTC track into WebAudio only while a media element plays it.
    element.srcObject = stream;
    element.muted = true;
    element.play().catch(() => {});
    this.context.createMediaStreamSource(stream).connect(this.recorder);
  }

  /** Play a burst whose first sample is context frame `first`; returns `first`. */
  schedule(first) {
    const source = this.context.createBufferSource();
    source.buffer = this.buffer;
    source.connect(this.destination);
    source.start(first / SAMPLE_RATE);
    return first;
  }

  /** Received samples with frames in [from, to), or null if not all have arrived. */
  window(from, to) {
    if (this.receivedUntil < to) return null;
    const out = new Float32Array(to - from);
    for (const { first, samples } of this.blocks) {
      const lo = Math.max(from, first);
      const hi = Math.min(to, first + samples.length);
      if (lo < hi) out.set(samples.subarray(lo - first, hi - first), lo - from);
    }
    return out;
  }

  forgetBefore(frame) {
    this.blocks = this.blocks.filter((b) => b.first + b.samples.length > frame);
  }

  async close() {
    this.track.stop();
    await this.context.close();
  }
}

/**
 * Run one benchmark and return its record (what the JSON download holds).
 *
 * options: server, key, mode ("pong" | "loopback"), pings, intervalMs, timeoutMs,
 *   bursts, burstIntervalMs, joinTimeoutMs, signal (AbortSignal), audioElement.
 * callbacks: onStatus(text), onProgress(done, total), onPing(sample), onBurst(burst).
 */
export async function runBenchmark(options, callbacks = {}) {
  const {
    server,
    key,
    mode = "pong",
    pings = 200,
    intervalMs = 50,
    timeoutMs = 5000,
    bursts = 10,
    burstIntervalMs = 1000,
    joinTimeoutMs = 30000,
    signal,
    audioElement,
  } = options;
  const status = callbacks.onStatus || (() => {});
  const progress = callbacks.onProgress || (() => {});
  const loopback = mode === "loopback";
  if (loopback && burstIntervalMs < 200) throw new BenchError("burst interval must be >= 200 ms");
  const totalSteps = pings + (loopback ? bursts : 0);
  const api = new Api(server, key);
  const detector = new BurstDetector();
  const record = {
    kind: "browser",
    platform: "webrtc",
    server: api.server,
    date: new Date().toISOString(),
    user_agent: navigator.userAgent,
    // performance.now() ticks in 5 us when the page is cross-origin isolated, else 100 us.
    cross_origin_isolated: Boolean(self.crossOriginIsolated),
    params: {
      mode,
      pings,
      interval_ms: intervalMs,
      timeout_ms: timeoutMs,
      ...(loopback ? { bursts, burst_interval_ms: burstIntervalMs } : {}),
    },
    session_id: null,
    summary: null,
    samples: [],
    bursts: [],
  };

  let audio = null;
  let pc = null;
  let session = null;
  let everConnected = false;
  try {
    if (loopback) {
      status("Starting audio…");
      audio = await AudioLoop.create(detector);
    }
    const started = performance.now();
    status("Starting a session (POST /connect)…");
    const connected = await api.request("POST", api.url("/connect"), {
      platforms: ["webrtc"],
      mode,
    });
    session = connected && connected.webrtc;
    if (!session || typeof session.offer_url !== "string") {
      throw new BenchError("POST /connect answered without a webrtc offer_url");
    }
    record.session_id = session.session_id;

    status("Connecting (WebRTC)…");
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") everConnected = true;
    });
    const channel = pc.createDataChannel("echo-bench", { ordered: true });
    if (audio) {
      pc.addTrack(audio.track, audio.destination.stream);
      pc.addEventListener("track", (event) => {
        if (event.track.kind === "audio") audio.attachRemote(event.track, audioElement);
      });
    }
    let pcId = null;
    const lateCandidates = [];
    const sendCandidates = async (candidates) => {
      const body = {
        pc_id: pcId,
        candidates: candidates.map((c) => ({
          candidate: c.candidate,
          sdp_mid: c.sdpMid,
          sdp_mline_index: c.sdpMLineIndex,
        })),
      };
      await api.request("PATCH", session.offer_url, body).catch(() => {});
    };
    let offered = false;
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (!candidate || !candidate.candidate || !offered) return;
      if (pcId) sendCandidates([candidate]);
      else lateCandidates.push(candidate);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc, ICE_GATHERING_MS);
    offered = true;
    const answer = await api.request("POST", session.offer_url, {
      sdp: pc.localDescription.sdp,
      type: pc.localDescription.type,
    });
    pcId = answer.pc_id;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    if (lateCandidates.length) await sendCandidates(lateCandidates.splice(0));

    // Pongs, matched by seq (negative seq: probes before the run).
    const samples = new Map();
    const counters = { late: 0, duplicates: 0, unexpected: 0 };
    let firstPong = null;
    let answered = 0;
    channel.addEventListener("message", (event) => {
      const arrival = performance.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || message.type !== "pong" || !Number.isInteger(message.seq)) return;
      if (message.seq < 0) {
        if (firstPong === null) firstPong = arrival;
        return;
      }
      const sample = samples.get(message.seq);
      if (!sample) {
        counters.unexpected++;
        return;
      }
      if (sample.rtt_ms !== null || sample.late_rtt_ms !== null) {
        sample.duplicates++;
        counters.duplicates++;
        return;
      }
      const rtt = arrival - sample.sent_perf;
      answered++;
      if (rtt > timeoutMs) {
        sample.late_rtt_ms = rtt;
        sample.status = "late";
        counters.late++;
      } else {
        sample.rtt_ms = rtt;
        sample.status = "ok";
        const receive = message.server_receive_time;
        const send = message.server_send_time;
        if (Number.isFinite(receive) && Number.isFinite(send)) {
          sample.server_processing_ms = (send - receive) * 1000;
        }
      }
      callbacks.onPing?.(sample);
    });
    const ping = (seq) =>
      channel.send(JSON.stringify({ type: "ping", timestamp: Date.now() / 1000, seq }));

    await until(() => channel.readyState === "open", joinTimeoutMs, "no data channel", signal);
    status("Waiting for the bot's first pong…");
    let probe = -1;
    const deadline = performance.now() + joinTimeoutMs;
    while (firstPong === null) {
      if (performance.now() > deadline) {
        throw new BenchError(`no pong from the bot within ${joinTimeoutMs / 1000} s`);
      }
      ping(probe--);
      await until(() => firstPong !== null, PROBE_INTERVAL_MS, "", signal).catch((e) => {
        if (e.message === "stopped") throw e;
      });
    }
    record.connect_to_first_pong_ms = firstPong - started;

    // Pings on a fixed schedule, not after each pong.
    status(`Pinging (${pings} pings, every ${intervalMs} ms)…`);
    const origin = performance.now();
    for (let seq = 0; seq < pings; seq++) {
      await sleep(origin + seq * intervalMs - performance.now(), signal);
      if (channel.readyState !== "open") throw new BenchError("the data channel closed");
      const sample = {
        seq,
        sent_time: Date.now() / 1000,
        sent_offset_ms: performance.now() - origin,
        sent_perf: performance.now(),
        status: "lost",
        rtt_ms: null,
        late_rtt_ms: null,
        server_processing_ms: null,
        duplicates: 0,
      };
      samples.set(seq, sample);
      ping(seq);
      progress(seq + 1, totalSteps, answered);
    }
    const lastSent = performance.now();
    await until(
      () => answered >= pings || performance.now() - lastSent > timeoutMs,
      timeoutMs + 1000,
      "",
      signal,
    ).catch((e) => {
      if (e.message === "stopped") throw e;
    });
    record.samples = [...samples.values()].map(({ sent_perf, ...rest }) => rest);
    const pingSummary = summarizePings(record.samples, counters);

    let audioSummary = null;
    if (audio) {
      audioSummary = await measureBursts(audio, pc, {
        bursts,
        burstIntervalMs,
        joinTimeoutMs,
        signal,
        status,
        onBurst: (burst, done) => {
          record.bursts.push(burst);
          progress(pings + done, totalSteps);
          callbacks.onBurst?.(burst);
        },
      });
    }
    record.summary = {
      ...pingSummary,
      connect_to_first_pong_ms: record.connect_to_first_pong_ms,
      ...(audioSummary ? { audio: audioSummary } : {}),
    };
    status("Done.");
    return record;
  } finally {
    const peerConnected = pc !== null && everConnected;
    if (pc) pc.close();
    if (audio) await audio.close().catch(() => {});
    if (session && session.session_id && !peerConnected) {
      // A bot whose peer connected ends when it leaves; a reservation never used would
      // otherwise wait for its join timeout.
      api.request("DELETE", api.url(`/rooms/${session.session_id}`)).catch(() => {});
    }
  }
}

async function inboundAudioPackets(pc) {
  let packets = 0;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") packets += report.packetsReceived;
  });
  return packets;
}

async function measureBursts(audio, pc, options) {
  const { bursts, burstIntervalMs, joinTimeoutMs, signal, status, onBurst } = options;
  status("Waiting for audio to come back…");
  const deadline = performance.now() + joinTimeoutMs;
  while ((await inboundAudioPackets(pc)) === 0 || !audio.remoteAttached) {
    if (performance.now() > deadline) {
      throw new BenchError(`no audio came back from the bot within ${joinTimeoutMs / 1000} s`);
    }
    await sleep(50, signal);
  }
  status(`Audio round trip (${bursts} bursts, every ${burstIntervalMs} ms)…`);
  const step = Math.round((burstIntervalMs / 1000) * SAMPLE_RATE);
  const first =
    Math.ceil(audio.context.currentTime * SAMPLE_RATE) + Math.round((LEAD_MS / 1000) * SAMPLE_RATE);
  const starts = [];
  for (let i = 0; i < bursts; i++) starts.push(audio.schedule(first + i * step));
  const results = [];
  for (let index = 0; index < bursts; index++) {
    const start = starts[index];
    const end = start + step;
    // The received audio for this burst's window, once it has all arrived.
    const waitMs = ((end - audio.context.currentTime * SAMPLE_RATE) / SAMPLE_RATE) * 1000;
    await sleep(waitMs, signal);
    await until(() => audio.receivedUntil >= end, 2000, "received audio stopped", signal);
    const found = audio.detector.analyse(audio.window(start, end));
    const burst = {
      index,
      sent_frame: start,
      latency_ms: found ? (found.onset / SAMPLE_RATE) * 1000 : null,
      level_dbfs: found ? found.level : null,
    };
    results.push(burst);
    audio.forgetBefore(end);
    onBurst(burst, index + 1);
  }
  return summarizeBursts(results, audio.detector);
}
