"""Audio settings shared by every platform's transport, chosen by echo mode."""

from processors import EchoMode

SAMPLE_RATE = 48000
"""Opus' native rate: with 48 kHz in and out nothing is resampled on the loop path."""


def media_params(mode: EchoMode) -> dict:
    """The `TransportParams` fields for a session in `mode`.

    `pong` enables no audio at all. `loopback` sends audio in 20 ms chunks (the size
    the peers send) without auto-silence, so an echoed frame leaves as soon as it
    arrives. `tone` keeps auto-silence so the tone never stutters.
    """
    audio_in = mode == EchoMode.LOOPBACK
    audio_out = mode in (EchoMode.LOOPBACK, EchoMode.TONE)
    return {
        "audio_in_enabled": audio_in,
        "audio_out_enabled": audio_out,
        "audio_in_sample_rate": SAMPLE_RATE if audio_in else None,
        "audio_out_sample_rate": SAMPLE_RATE if audio_out else None,
        "audio_out_10ms_chunks": 2,
        "audio_out_auto_silence": mode != EchoMode.LOOPBACK,
        "audio_out_end_silence_secs": 0,
        "video_in_enabled": False,
        "video_out_enabled": False,
    }
