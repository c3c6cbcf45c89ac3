"""Platform specific code: rooms, tokens, Pipecat transports, local WebRTC offers."""
