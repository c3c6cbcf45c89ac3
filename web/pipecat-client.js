// The official Pipecat JS client (@pipecat-ai/client-js) with its SmallWebRTC transport,
// bundled for the browser tests (tests/test_browser.py): `npm ci && npm run build`
// writes ../tests/browser/pipecat-client.bundle.js, which is committed.
//
// The transport's default media manager (DailyMediaManager) loads Daily's call machine
// from the internet; this uses the transport's WavMediaManager instead, which needs
// nothing but the page's own microphone (a fake one in the tests).

import { LogLevel, logger, PipecatClient } from "@pipecat-ai/client-js";
import { SmallWebRTCTransport, WavMediaManager } from "@pipecat-ai/small-webrtc-transport";

logger.setLevel(LogLevel.WARN);

/**
 * Start a bot through the runner's `POST /start`, wait for bot-ready, send `pings` pings
 * as `sendClientRequest('ping', {timestamp, seq})` and return what came back.
 */
async function pipecatPing({
  startUrl,
  mode = "pong",
  pings = 50,
  key = "",
  timeoutMs = 5000,
  connectTimeoutMs = 20000,
}) {
  const events = { botReady: null, errors: [], serverMessages: 0, states: [] };
  const transport = new SmallWebRTCTransport({ mediaManager: new WavMediaManager() });
  const client = new PipecatClient({
    transport,
    enableMic: false,
    enableCam: false,
    callbacks: {
      onBotReady: (data) => {
        events.botReady = data;
      },
      onError: (message) => events.errors.push(JSON.stringify(message)),
      onServerMessage: () => {
        events.serverMessages++;
      },
      onTransportStateChanged: (state) => events.states.push(state),
    },
  });
  const headers = new Headers();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const started = performance.now();
  let timer;
  const ready = await Promise.race([
    client.startBotAndConnect({
      endpoint: startUrl,
      headers,
      requestData: { transport: "webrtc", body: { mode } },
    }),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`not connected within ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
    }),
  ])
    .catch(async (error) => {
      await client.disconnect().catch(() => {});
      throw new Error(`${error.message}; transport states: ${events.states.join(" > ")}`);
    })
    .finally(() => clearTimeout(timer));
  const connectMs = performance.now() - started;
  const pongs = [];
  const rtts = [];
  for (let seq = 0; seq < pings; seq++) {
    const sent = performance.now();
    const pong = await client.sendClientRequest("ping", { timestamp: Date.now(), seq }, timeoutMs);
    rtts.push(performance.now() - sent);
    pongs.push(pong);
  }
  await client.disconnect();
  return {
    botReady: events.botReady,
    readyResolved: ready,
    connectMs,
    pongs,
    rtts,
    errors: events.errors,
    states: events.states,
    serverMessages: events.serverMessages,
    state: client.state,
  };
}

window.pipecatPing = pipecatPing;
