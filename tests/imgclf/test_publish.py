"""`imgclf publish` sends one message per image: JSON naming it, or its bytes with a content type."""

import json

from imgclf.cli import main as imgclf
from tests.helpers import colour_image


def _pull_all(pubsub, subscription, want):
    got = []
    with pubsub.subscriber() as subscriber:
        for _ in range(30):
            response = subscriber.pull(subscription=subscription, max_messages=50, timeout=10)
            got += [m.message for m in response.received_messages]
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
            if len(got) >= want:
                break
    return got


def test_publish_a_folder_as_json_then_as_raw_images(tmp_path, pubsub_emulator, capsys):
    for i, colour in enumerate(["red", "blue", "green"]):
        (tmp_path / f"{colour}.png").write_bytes(colour_image(colour, i))
    (tmp_path / "notes.txt").write_text("not an image")
    topic = pubsub_emulator.create_topic("publish-test")
    subscription = pubsub_emulator.create_subscription("publish-test-sub", "publish-test")

    assert imgclf(["publish", "--topic", topic, "--images", str(tmp_path), "--rate", "0"]) == 0
    assert "published 3 (0 failed)" in capsys.readouterr().out
    named = sorted(json.loads(m.data)["image_uri"] for m in _pull_all(pubsub_emulator, subscription, 3))
    assert named == sorted(str(p) for p in tmp_path.glob("*.png"))

    assert (
        imgclf(
            [
                "publish",
                "--topic",
                "publish-test",
                "--project",
                "test-proj",
                "--images",
                str(tmp_path),
                "--raw",
                "--count",
                "4",
                "--rate",
                "0",
            ]
        )
        == 0
    )
    raw = _pull_all(pubsub_emulator, subscription, 4)
    assert len(raw) == 4 and all(m.attributes["content-type"] == "image/png" for m in raw)
    assert {m.data for m in raw} == {p.read_bytes() for p in tmp_path.glob("*.png")}
