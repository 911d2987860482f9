"""The Pub/Sub and BigQuery stand-ins start, answer the official clients and Beam, and stop cleanly."""

from __future__ import annotations

import os
import uuid

import apache_beam as beam
import pytest

from imgclf.emulators import BigQueryEmulator, EmulatorError, PubSubEmulator


@pytest.fixture(scope="module")
def pubsub():
    with PubSubEmulator() as emulator, emulator.environ():
        yield emulator


@pytest.fixture(scope="module")
def bq():
    with BigQueryEmulator() as emulator, emulator.environ():
        yield emulator


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_pubsub_publish_then_pull(pubsub):
    topic = pubsub.create_topic(_name("topic"))
    subscription = pubsub.create_subscription(_name("sub"), topic.rsplit("/", 1)[1])
    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub.target

    publisher = pubsub.publisher()
    ids = [publisher.publish(topic, f"m{i}".encode(), n=str(i)).result(timeout=30) for i in range(3)]

    received = []
    with pubsub.subscriber() as subscriber:
        for _ in range(20):  # bounded: the emulator may hand out fewer than asked for per pull
            response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
            received += response.received_messages
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
            if len(received) >= 3:
                break
    assert sorted(m.message.message_id for m in received) == sorted(ids)
    assert sorted((m.message.data, m.message.attributes["n"]) for m in received) == [
        (b"m0", "0"),
        (b"m1", "1"),
        (b"m2", "2"),
    ]
    assert all(m.message.publish_time.year >= 2024 for m in received)


def test_beam_streaming_inserts_reach_the_bigquery_emulator(bq):
    from models import bigquery as mbq

    table = f"{bq.create_dataset(_name('ds'))}.{_name('rows')}"
    rows = [{"uri": f"gs://b/{i}.jpg", "label": "cat" if i % 2 else "dog", "score": i / 10} for i in range(5)]
    with beam.Pipeline(runner="FnApiRunner") as p:
        _ = (
            p
            | beam.Create(rows)
            | beam.io.WriteToBigQuery(
                table.replace(".", ":", 1),
                schema="uri:STRING,label:STRING,score:FLOAT",
                method=beam.io.WriteToBigQuery.Method.STREAMING_INSERTS,
                create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
                write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
            )
        )
    with mbq.client(bq.project) as client:
        back = sorted((dict(r) for r in client.list_rows(table, timeout=30)), key=lambda r: r["uri"])
    assert back == rows


def test_bigquery_emulator_without_its_venv_says_how_to_make_it(tmp_path):
    with pytest.raises(EmulatorError, match="make emulators"):
        BigQueryEmulator(venv=tmp_path / "missing").start()


def test_stop_ends_the_process_group(pubsub):
    with PubSubEmulator(startup_timeout=60) as other:
        pid = other.pid
        assert other.port != pubsub.port
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
