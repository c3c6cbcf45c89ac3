"""Audio settings shared by every platform's transport.

Which audio a session carries is decided by its mode, in `bot.MODES`; this module only
turns that into Pipecat's `TransportParams` fields.
"""

from dataclasses import dataclass

SAMPLE_RATE = 48000
"""Opus' native rate: with 48 kHz in and out nothing is resampled on the loop path."""


@dataclass(frozen=True)
class AudioSpec:
    """The audio a session's transport carries.

    Attributes:
        receive: Audio from the client reaches the pipeline.
        send: The bot has an audio track.
        auto_silence: The output track fills gaps with silence on its own 10 ms clock:
            right for a generated tone (it never stutters), wrong for an echo (each
            echoed frame must leave as soon as it arrives).
    """

    receive: bool = False
    send: bool = False
    auto_silence: bool = True


NO_AUDIO = AudioSpec()


def transport_params(audio: AudioSpec) -> dict:
    """The `TransportParams` fields for `audio` (48 kHz, 20 ms output chunks, no video)."""
    return {
        "audio_in_enabled": audio.receive,
        "audio_out_enabled": audio.send,
        "audio_in_sample_rate": SAMPLE_RATE if audio.receive else None,
        "audio_out_sample_rate": SAMPLE_RATE if audio.send else None,
        "audio_out_10ms_chunks": 2,
        "audio_out_auto_silence": audio.auto_silence,
        "audio_out_end_silence_secs": 0,
        "video_in_enabled": False,
        "video_out_enabled": False,
    }
