"""The publish channel and the service's Follower, with a stand-in model loader."""

from __future__ import annotations

from pathlib import Path

from app_production.channel import Channel, Follower


class Loader:
    def __init__(self, broken: set[str]) -> None:
        self.broken, self.loaded, self.swapped = broken, [], []  # type: ignore[var-annotated]

    def load(self, tag: str) -> str:
        self.loaded.append(tag)
        if tag in self.broken:
            raise ValueError(f"{tag}: sha256 mismatch")
        return f"model {tag}"

    def swap(self, tag: str, model: str) -> None:
        self.swapped.append((tag, model))


def test_the_follower_swaps_refuses_and_retries_a_new_publish(tmp_path: Path) -> None:
    path = tmp_path / "channel.json"
    loader = Loader(broken={"m:v3"})
    follower = Follower(path, "m:v1", loader.load, loader.swap)
    follower.check()  # no channel yet: nothing happens
    Channel(model="m:v1").save(path)
    follower.check()
    assert loader.loaded == []  # already served

    Channel(model="m:v2", history=["m:v1"]).save(path)
    follower.check()
    assert loader.swapped == [("m:v2", "model m:v2")] and follower.serving == "m:v2"

    broken = Channel(model="m:v3", history=["m:v1", "m:v2"])
    broken.save(path)
    follower.check()
    follower.check()  # the same publish is not tried twice
    assert follower.serving == "m:v2" and loader.loaded.count("m:v3") == 1
    assert follower.refused == {
        "model": "m:v3",
        "id": broken.id,
        "reason": "ValueError: m:v3: sha256 mismatch",
    }

    loader.broken.clear()  # fixed, and published again: tried again
    Channel(model="m:v3", history=["m:v1", "m:v2"]).save(path)
    follower.check()
    assert follower.serving == "m:v3" and follower.refused is None


def test_a_damaged_channel_file_is_ignored_until_it_is_whole_again(tmp_path: Path) -> None:
    path = tmp_path / "channel.json"
    path.write_text('{"model": "m:v')
    assert Channel.load(path) is None
    loader = Loader(broken=set())
    Follower(path, "m:v1", loader.load, loader.swap).check()
    assert loader.loaded == []
