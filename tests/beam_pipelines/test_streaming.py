"""The streaming pipeline end to end on the local runner, against the Pub/Sub and BigQuery emulators.

Every message published comes out exactly once: a prediction row in BigQuery or a dead
letter (on the dead-letter topic and in the dead-letter table) with its reason; a resent
message makes no second row; moving the alias switches later rows to the new version.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import apache_beam as beam
import pytest

from beam_pipelines import streaming
from imgclf.cli import main as imgclf
from tests.helpers import colour_image, register_relabelled_version

DEADLINE_S = 180


def _rows(bq, table: str) -> list[dict]:
    try:
        return [dict(r) for r in bq.client().query(f"SELECT * FROM `{table}`").result()]
    except Exception as e:  # the table appears with the first row
        if "not found" in str(e).lower():
            return []
        raise


def _wait_for(predicate, what: str, timeout: float = DEADLINE_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def _pull(pubsub, subscription: str, want: int) -> list:
    got = []
    with pubsub.subscriber() as subscriber:
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < want and time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=50, timeout=10)
            got += [m.message for m in response.received_messages]
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
    return got


@pytest.fixture
def stream(pubsub_emulator, bigquery_emulator, registry_root, tmp_path):
    """A running stream over fresh topics and tables; yields what the test needs, then cancels it."""
    run_id = uuid.uuid4().hex[:8]
    images = pubsub_emulator.create_topic(f"images-{run_id}")
    subscription = pubsub_emulator.create_subscription(f"images-{run_id}-sub", f"images-{run_id}")
    dead = pubsub_emulator.create_topic(f"dead-{run_id}")
    dead_subscription = pubsub_emulator.create_subscription(f"dead-{run_id}-sub", f"dead-{run_id}")
    table = f"test-proj:stream_{run_id}.predictions"
    options = streaming.stream_options(
        [
            f"--input_subscription={subscription}",
            f"--output_table={table}",
            f"--dead_letter_topic={dead}",
            "--project=test-proj",
            f"--model_root={registry_root}",
            "--refresh_s=1",
            "--id_attribute=event_id",
        ]
    )
    p = beam.Pipeline(options=options)
    streaming.build_pipeline(p, options)
    result = p.run()
    try:
        yield {
            "topic": images,
            "dead_subscription": dead_subscription,
            "table": f"test-proj.stream_{run_id}.predictions",
            "dead_table": f"test-proj.stream_{run_id}.predictions_dead_letters",
            "images": tmp_path,
            "registry": registry_root,
        }
    finally:  # the local runner's cancel waits out a 30 s pull; nothing here depends on it finishing
        threading.Thread(target=result.cancel, daemon=True).start()


def test_every_message_is_one_row_or_one_dead_letter_and_rows_follow_the_alias(
    stream, pubsub_emulator, bigquery_emulator
):
    publisher = pubsub_emulator.publisher()
    folder = stream["images"]
    good = {}
    for i, colour in enumerate(["red", "green", "blue", "red"]):
        path = folder / f"{colour}-{i}.png"
        path.write_bytes(colour_image(colour, i))
        good[str(path)] = colour
    sent = [(json.dumps({"image_uri": uri, "camera": i}).encode(), {"event_id": f"e{i}"}) for i, uri in enumerate(good)]
    sent.append(
        (colour_image("green", 9), {"content-type": "image/png", "image_uri": "upload-9.png", "event_id": "e9"})
    )
    sent.append(sent[0])  # a resend of the first message: same event id, so no second row
    bad = {
        "not JSON": (b"{oops", {}),
        "no image_uri": (json.dumps({"uri": "x.png"}).encode(), {}),
        "missing image": (json.dumps({"image_uri": str(folder / "gone.png")}).encode(), {}),
        "not an image": (b"plain text", {"content-type": "image/png"}),
        "corrupt image": (colour_image("red", 3)[:60], {"content-type": "image/png"}),
    }
    ids = {}
    for data, attributes in sent + list(bad.values()):
        ids.setdefault(data, publisher.publish(stream["topic"], data, **attributes).result(timeout=30))

    rows = _wait_for(lambda: (r := _rows(bigquery_emulator, stream["table"])) and len(r) >= 5 and r, "5 rows")
    dead_rows = _wait_for(lambda: (r := _rows(bigquery_emulator, stream["dead_table"])) and len(r) >= 5 and r, "5 dead")
    letters = _pull(pubsub_emulator, stream["dead_subscription"], 5)

    assert sorted(r["image_uri"] for r in rows) == sorted([*good, "upload-9.png"])
    assert all(r["model_version"] == 1 and r["error"] is None for r in rows)
    assert {r["image_uri"]: r["labels"] for r in rows if r["image_uri"] in good} == {u: [c] for u, c in good.items()}
    assert all(r["latency_ms"] >= 0 and r["message_id"] for r in rows)
    codes = {r["message_id"]: r["error_code"] for r in dead_rows}
    assert sorted(codes.values()) == sorted(
        ["invalid_message", "invalid_message", "not_found", "not_an_image", "decode_error"]
    )
    assert sorted(m.attributes["imgclf_error_code"] for m in letters) == sorted(codes.values())
    assert {m.data for m in letters} == {data for data, _ in bad.values()}  # the payloads, as sent

    v2 = register_relabelled_version(stream["registry"], "colours", ["azul", "verde", "rojo"], alias="production")
    time.sleep(2)  # > --refresh_s
    later = folder / "later.png"
    later.write_bytes(colour_image("blue", 20))
    publisher.publish(stream["topic"], json.dumps({"image_uri": str(later)}).encode(), event_id="e20").result(
        timeout=30
    )
    rows = _wait_for(lambda: (r := _rows(bigquery_emulator, stream["table"])) and len(r) >= 6 and r, "the 6th row")
    newest = next(r for r in rows if r["image_uri"] == str(later))
    assert newest["model_version"] == v2 and newest["labels"][0] in {"azul", "verde", "rojo"}
    time.sleep(3)  # nothing more trickles in: no duplicates
    assert len(_rows(bigquery_emulator, stream["table"])) == 6
    assert len(_rows(bigquery_emulator, stream["dead_table"])) == 5

    # The table is dropped under the running stream: the next row is refused, and dead-lettered.
    bigquery_emulator.client().delete_table(stream["table"])
    publisher.publish(stream["topic"], json.dumps({"image_uri": str(later)}).encode(), event_id="e21").result(
        timeout=30
    )
    dead_rows = _wait_for(lambda: (r := _rows(bigquery_emulator, stream["dead_table"])) and len(r) >= 6 and r, "6 dead")
    refused = [r for r in dead_rows if r["error_code"] == "write_error"]
    assert len(refused) == 1 and json.loads(refused[0]["payload"])["image_uri"] == str(later)


def test_imgclf_stream_refuses_unusable_flags_before_starting(registry_root, capsys):
    base = ["stream", f"--model_root={registry_root}", "--project=p"]
    assert imgclf([*base, "--output_files=/tmp/x"]) == 2  # no input
    assert "--input_subscription or --input_topic" in capsys.readouterr().err
    assert imgclf([*base, "--input_topic=t"]) == 2  # no output
    assert "--output_table and/or --output_files" in capsys.readouterr().err
    assert imgclf([*base, "--input_topic=t", "--output_files=/tmp/x", "--max_batch_wait_s=0.5"]) == 2
    assert "withholds" in capsys.readouterr().err
    assert imgclf([*base, "--input_topic=t", f"--output_files={registry_root}/out"]) == 4  # inside the registry
