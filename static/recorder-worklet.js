// Audio worklet: hands the received audio to the page in 50 ms blocks, each with the
// AudioContext frame of its first sample, so that sent and received audio are timed on
// one clock (the context's sample clock).
const BLOCK = 2400;

class RecorderProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
    this.first = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    const length = channel ? channel.length : 128;
    for (let i = 0; i < length; i++) {
      if (this.filled === 0) this.first = currentFrame + i;
      this.block[this.filled++] = channel ? channel[i] : 0;
      if (this.filled === BLOCK) {
        this.port.postMessage({ first: this.first, samples: this.block }, [this.block.buffer]);
        this.block = new Float32Array(BLOCK);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("echo-bench-recorder", RecorderProcessor);
