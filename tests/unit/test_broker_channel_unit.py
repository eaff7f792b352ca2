"""The pure parts of the broker channel: URLs, tags, stamps; no broker answering."""

from __future__ import annotations

import asyncio
import inspect
import re
import time

import pytest

from app_production.broker_channel import (
    BrokerUnavailable,
    NatsChannel,
    broker_address,
    object_name,
)
from app_production.channel import Channel
from app_production.channel_protocol import ChannelBackend, split_tag, stamped
from model.errors import ArtifactError, ServiceUnavailable, UsageError
from tests.helpers import ROOT, closed_port


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("nats://127.0.0.1:4333", "nats://127.0.0.1:4333"),
        ("nats://broker", "nats://broker:4222"),
        ("nats://broker:4222/", "nats://broker:4222"),
        ("nats://[::1]:4222", "nats://[::1]:4222"),
    ],
)
def test_broker_address(url: str, address: str) -> None:
    assert broker_address(url) == address


@pytest.mark.parametrize(
    "url", ["http://broker:4222", "broker:4222", "nats://", "nats://h:99999", "nats://h:1/x"]
)
def test_a_bad_url_says_how_to_write_one(url: str) -> None:
    with pytest.raises(UsageError, match=r"use nats://HOST:PORT, e.g. nats://127.0.0.1:4222"):
        broker_address(url)


def test_tags_and_object_names() -> None:
    assert split_tag("penguins:v2") == ("penguins", "v2")
    assert object_name("penguins:v2", "model.joblib") == "penguins/v2/model.joblib"
    for bad in ("penguins", "penguins:", "Penguins:v1", "penguins:../x", "penguins:.v"):
        with pytest.raises((UsageError, ArtifactError)):
            split_tag(bad)


def test_stamped_is_a_new_publish() -> None:
    record = Channel(model="penguins:v2", history=["penguins:v1"])
    first, second = stamped(record, "ab" * 32), stamped(record, "ab" * 32)
    assert first.id and first.id != second.id and first.published_at
    assert (first.model, first.history, first.sha256) == (record.model, record.history, "ab" * 32)
    assert record.id == "" and first.history is not record.history


def test_no_broker_fails_fast_with_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"no broker answers at {url}") as failed:
        NatsChannel(url, "penguins", timeout=1.0)
    assert time.monotonic() - began < 5
    assert isinstance(failed.value, ServiceUnavailable)  # exit code 4, as a service down


def test_no_broker_fails_cleanly_under_a_running_event_loop() -> None:
    """As in a service worker, whose __init__ runs under uvicorn's loop: the failed connect
    cleans up in its own loop's thread (it once raised RuntimeError: another loop is running)."""
    url = f"nats://127.0.0.1:{closed_port()}"

    async def in_a_loop() -> None:
        with pytest.raises(BrokerUnavailable, match="no broker answers"):
            NatsChannel(url, "penguins", timeout=1.0)

    asyncio.run(in_a_loop())


@pytest.mark.parametrize("method", ["latest", "publish", "fetch", "report", "replicas", "close"])
def test_the_broker_channel_has_the_protocol_s_methods(method: str) -> None:
    """mypy checks the types (broker_channel.py assigns a NatsChannel to a ChannelBackend)."""
    expected = inspect.signature(getattr(ChannelBackend, method))
    assert (
        inspect.signature(getattr(NatsChannel, method)).parameters.keys()
        == expected.parameters.keys()
    )


def test_only_the_broker_channel_imports_nats() -> None:
    """`kit --help` must not pay for nats: nothing imported at start-up imports it."""
    importing = re.compile(r"^\s*(import nats|from nats)\b", re.MULTILINE)
    found = [
        str(path.relative_to(ROOT))
        for folder in ("app_production", "app_prototype", "model", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if importing.search(path.read_text())
    ]
    assert found == ["app_production/broker_channel.py"]
