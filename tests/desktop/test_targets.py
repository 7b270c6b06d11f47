"""Saved upload targets as stored in the database: what a target keeps, and a hand-edited
or older entry that does not parse never stops the others from loading."""

from __future__ import annotations

from typing import Any

from desktop import targets
from desktop.targets import Target


class Settings:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get_setting(self, name: str, default: Any = None) -> Any:
        return self.value if name == targets.SETTING else default

    async def set_setting(self, name: str, value: Any) -> None:
        self.value = value


def test_given_headers_and_a_part_size_then_a_target_round_trips_and_its_payload_carries_them() -> None:
    http = Target(name="Blog", kind=targets.HTTP, url="https://h/x/", headers=(("X-A", "1"), ("X-B", "2")))
    s3 = Target(name="Videos", kind=targets.S3, bucket="b", part_size=16 * 1024 * 1024)
    for t in (http, s3):
        assert Target.from_json(t.name, t.to_json()) == t
    assert http.payload(["/a"])["headers"] == {"X-A": "1", "X-B": "2"}
    assert s3.payload(["/a"])["part_size"] == 16 * 1024 * 1024
    assert "part_size" not in Target(name="n", kind=targets.S3, bucket="b").to_json()


async def test_given_odd_saved_entries_then_bad_fields_are_dropped_and_bad_entries_skipped() -> None:
    store = Settings(
        {
            "old": {"kind": "http", "url": "https://h/"},
            "odd": {"kind": "s3", "bucket": "b", "part_size": "big", "headers": ["X: 1"]},
            "tiny": {"kind": "s3", "bucket": "b", "part_size": 1024},
            "mixed": {"kind": "http", "url": "https://h/", "headers": {"X-Ok": "1", "X-Bad": 2}},
            "broken": {"kind": "ftp"},
        }
    )
    found = {t.name: t for t in targets.load(store)}
    assert sorted(found) == ["mixed", "odd", "old", "tiny"]
    assert found["tiny"].part_size == 0  # S3 refuses parts under 5 MiB: the default instead
    assert found["old"].headers == () and found["odd"].part_size == 0 and found["odd"].headers == ()
    assert found["mixed"].headers == (("X-Ok", "1"),)
    await targets.save(store, Target(name="new", kind=targets.S3, bucket="c", part_size=5 * 1024 * 1024))
    assert store.value["new"] == {"kind": "s3", "bucket": "c", "part_size": 5 * 1024 * 1024}
    assert store.value["broken"] == {"kind": "ftp"}  # left as it was, never lost
