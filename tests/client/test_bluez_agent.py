"""The BlueZ pairing agent: its answers without a bus, then over a private D-Bus daemon."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("dbus_fast")

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusStr
from dbus_fast.service import ServiceInterface, dbus_method

from scalppen.transports.base import PairingFailed
from scalppen.transports.bluez_agent import (
    AGENT_INTERFACE,
    AGENT_PATH,
    CAPABILITY,
    AgentCanceled,
    AgentRejected,
    BluezPasskeyAgent,
    NoReply,
    PasskeyAgentLogic,
    parse_passkey,
)
from tests.client.scripted_pen import run

pytestmark = pytest.mark.timeout(30)

DEVICE = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01"


# -- logic, no bus -------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "number"), [
    (123456, 123456), ("123456", 123456), (" 012 345 ", 12345), ("000000", 0), (999999, 999999),
])
def test_parse_passkey_accepts(typed: int | str, number: int) -> None:
    assert parse_passkey(typed) == number


@pytest.mark.parametrize("typed", ["", "12a456", "1234567", -1, 1_000_000, True])
def test_parse_passkey_rejects(typed: Any) -> None:
    with pytest.raises(AgentRejected):
        parse_passkey(typed)


def test_request_passkey_with_sync_and_async_providers() -> None:
    async def typed() -> str:
        return "654321"

    async def body() -> None:
        assert await PasskeyAgentLogic(lambda: 123456).request_passkey(DEVICE) == 123456
        logic = PasskeyAgentLogic(typed, device_path=DEVICE)
        assert await logic.request_passkey(DEVICE) == 654321
        assert logic.passkey_requested

    run(body())


def test_request_passkey_refusals() -> None:
    def broken() -> int:
        raise RuntimeError("prompt failed")

    async def never() -> int:
        await asyncio.sleep(10)
        return 1

    async def body() -> None:
        with pytest.raises(AgentRejected):
            await PasskeyAgentLogic(lambda: 1, device_path=DEVICE).request_passkey("/other")
        with pytest.raises(AgentRejected):
            await PasskeyAgentLogic(lambda: "nope").request_passkey(DEVICE)
        with pytest.raises(AgentCanceled):
            await PasskeyAgentLogic(broken).request_passkey(DEVICE)
        with pytest.raises(AgentCanceled):
            await PasskeyAgentLogic(never, timeout=0.05).request_passkey(DEVICE)

    run(body())


def test_other_pairing_methods_are_refused() -> None:
    logic = PasskeyAgentLogic(lambda: 1)
    with pytest.raises(AgentRejected):
        logic.request_pin_code(DEVICE)
    with pytest.raises(AgentRejected):
        logic.request_confirmation(DEVICE, 123456)
    with pytest.raises(AgentRejected):
        logic.request_authorization(DEVICE)
    with pytest.raises(AgentRejected):
        logic.authorize_service(DEVICE, "0000180f-0000-1000-8000-00805f9b34fb")
    logic.cancel()
    logic.release()
    assert logic.canceled and logic.released


# -- wiring, over a private D-Bus daemon ------------------------------------------------------


@pytest.fixture
def private_bus() -> Iterator[str]:
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon not installed")
    proc = subprocess.Popen(
        [daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            pytest.skip("dbus-daemon did not start")
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=5)


class FakeAgentManager(ServiceInterface):
    """Stands in for BlueZ's org.bluez.AgentManager1."""

    def __init__(self) -> None:
        super().__init__("org.bluez.AgentManager1")
        self.calls: list[tuple[str, str, str]] = []
        self.agent_owner = ""

    @dbus_method()
    def RegisterAgent(self, agent: DBusObjectPath, capability: DBusStr) -> NoReply:
        self.calls.append(("RegisterAgent", agent, capability))

    @dbus_method()
    def RequestDefaultAgent(self, agent: DBusObjectPath) -> NoReply:
        self.calls.append(("RequestDefaultAgent", agent, ""))

    @dbus_method()
    def UnregisterAgent(self, agent: DBusObjectPath) -> NoReply:
        self.calls.append(("UnregisterAgent", agent, ""))


async def ask_passkey(bluez: MessageBus, agent_bus: MessageBus, device: str) -> Message:
    reply = await bluez.call(Message(
        destination=agent_bus.unique_name, path=AGENT_PATH, interface=AGENT_INTERFACE,
        member="RequestPasskey", signature="o", body=[device],
    ))
    assert reply is not None
    return reply


def test_agent_registers_answers_and_unregisters_over_dbus(private_bus: str) -> None:
    async def body() -> None:
        bluez = await MessageBus(bus_address=private_bus).connect()
        manager = FakeAgentManager()
        bluez.export("/org/bluez", manager)
        await bluez.request_name("org.bluez")
        agent_bus = await MessageBus(bus_address=private_bus).connect()

        async def typed() -> str:
            return "246810"

        try:
            async with BluezPasskeyAgent(typed, device_path=DEVICE, bus=agent_bus) as agent:
                assert manager.calls == [("RegisterAgent", AGENT_PATH, CAPABILITY),
                                         ("RequestDefaultAgent", AGENT_PATH, "")]
                reply = await ask_passkey(bluez, agent_bus, DEVICE)
                assert reply.message_type == MessageType.METHOD_RETURN
                assert reply.signature == "u" and reply.body == [246810]
                refused = await ask_passkey(bluez, agent_bus, "/org/bluez/hci0/dev_OTHER")
                assert refused.message_type == MessageType.ERROR
                assert refused.error_name == "org.bluez.Error.Rejected"
                confirm = await bluez.call(Message(
                    destination=agent_bus.unique_name, path=AGENT_PATH,
                    interface=AGENT_INTERFACE, member="RequestConfirmation", signature="ou",
                    body=[DEVICE, 123456]))
                assert confirm is not None and confirm.error_name == "org.bluez.Error.Rejected"
                assert agent.logic.passkey_requested
            assert manager.calls[-1] == ("UnregisterAgent", AGENT_PATH, "")
            gone = await ask_passkey(bluez, agent_bus, DEVICE)
            assert gone.message_type == MessageType.ERROR  # no longer exported
        finally:
            agent_bus.disconnect()
            bluez.disconnect()

    run(body())


def test_agent_without_bluez_fails_cleanly(private_bus: str) -> None:
    async def body() -> None:
        agent_bus = await MessageBus(bus_address=private_bus).connect()
        try:
            with pytest.raises(PairingFailed, match="RegisterAgent"):
                async with BluezPasskeyAgent(lambda: 1, bus=agent_bus):
                    pass
        finally:
            agent_bus.disconnect()

    run(body())


def test_system_bus_unreachable_is_pairing_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/scalppen-bus")

    async def body() -> None:
        with pytest.raises(PairingFailed, match="system bus"):
            async with BluezPasskeyAgent(lambda: 1):
                pass

    run(body())
    assert os.environ["DBUS_SYSTEM_BUS_ADDRESS"].startswith("unix:")
