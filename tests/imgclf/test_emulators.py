"""The Pub/Sub and BigQuery stand-ins start, answer the official clients and Beam, and stop cleanly."""

from __future__ import annotations

import os
import uuid

import apache_beam as beam
import pytest

from imgclf.emulators import BigQueryEmulator, EmulatorError, PubSubEmulator


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_pubsub_publish_then_pull(pubsub_emulator):
    topic = pubsub_emulator.create_topic(_name("topic"))
    subscription = pubsub_emulator.create_subscription(_name("sub"), topic.rsplit("/", 1)[1])
    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub_emulator.target

    publisher = pubsub_emulator.publisher()
    ids = [publisher.publish(topic, f"m{i}".encode(), n=str(i)).result(timeout=30) for i in range(3)]

    received = []
    with pubsub_emulator.subscriber() as subscriber:
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


def test_beam_streaming_inserts_reach_the_bigquery_emulator(bigquery_emulator):
    from models import bigquery as mbq

    table = f"{bigquery_emulator.create_dataset(_name('ds'))}.{_name('rows')}"
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
    with mbq.client(bigquery_emulator.project) as client:
        back = sorted((dict(r) for r in client.list_rows(table, timeout=30)), key=lambda r: r["uri"])
    assert back == rows


def test_bigquery_emulator_without_its_venv_says_how_to_make_it(tmp_path):
    with pytest.raises(EmulatorError, match="make emulators"):
        BigQueryEmulator(venv=tmp_path / "missing").start()


def test_stop_ends_the_process_group(pubsub_emulator):
    with PubSubEmulator(startup_timeout=60) as other:
        pid = other.pid
        assert other.port != pubsub_emulator.port
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
