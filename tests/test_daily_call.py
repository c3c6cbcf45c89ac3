"""echo_bench/participants/daily.py: the join settings and the thread-to-loop completions."""

import asyncio
import threading

from echo_bench.participants.daily import completion, join_settings


def test_join_settings_publish_the_custom_microphone_when_given():
    settings = join_settings("track-1")
    microphone = settings["inputs"]["microphone"]
    assert microphone == {"isEnabled": True, "settings": {"customTrack": {"id": "track-1"}}}
    assert settings["publishing"]["microphone"]["isPublishing"] is True
    assert settings["publishing"]["microphone"]["sendSettings"] == {"channelConfig": "mono"}
    assert settings["inputs"]["camera"] == {"isEnabled": False}
    assert settings["publishing"]["camera"] == {"isPublishing": False}


def test_join_settings_without_a_track_send_no_audio():
    settings = join_settings(None)
    assert settings["inputs"]["microphone"]["isEnabled"] is False
    assert settings["publishing"]["microphone"]["isPublishing"] is False


async def test_a_completion_from_another_thread_resolves_the_future_once():
    loop = asyncio.get_running_loop()
    results = []
    for args in [("data", None), ("frames",), ()]:
        future = loop.create_future()
        done = completion(loop, future)
        threads = [threading.Thread(target=done, args=args) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results.append(await asyncio.wait_for(future, 1))
    assert results == [("data", None), "frames", None]
