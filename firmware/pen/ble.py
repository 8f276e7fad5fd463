# The pen's GATT service on MicroPython's low-level bluetooth module.
#
# Services:
#   pen service (128-bit, UUIDs below, equal to scalppen_protocol.gatt):
#     request  write + write-without-response, authenticated link only
#     event    notify, authenticated link only
#   Device Information 0x180A: manufacturer, model, serial, firmware, hardware
#   Battery 0x180F: level (read + notify), no pairing needed
#
# Security: LE Secure Connections with MITM; the pen is display-only, so the
# central types the 6-digit passkey the pen shows (on_passkey). Bonds are kept in
# a JSON file of hex strings (secrets_path), so they survive a reboot.
# What the pen itself holds to (pen/pairing.py has who may pair and when):
# - a link counts as authenticated only when the stack reports it encrypted,
#   authenticated (MITM), bonded and with a 16-byte key (_IRQ_ENCRYPTION_UPDATE);
#   an authenticated link below that is dropped (NimBLE would let its writes
#   through: MicroPython registers every attribute with min_key_size 0);
# - a secret is stored only for a pairing in which the pen showed a passkey it was
#   allowed to show: Just Works (no passkey) and refused pairings store nothing;
# - a passkey is shown only to a pen without a bond or inside the pairing window,
#   and not while failed passkeys back off; otherwise the link is dropped;
# - NimBLE's own deletions (a repeated pairing) are honoured only while pairing is
#   open; revoke_others() forgets every host but the link's, and the table never
#   evicts the permit key's host.
# Whether Secure Connections (not legacy pairing) was used is not in MicroPython's
# IRQs: that is NimBLE's build option BLE_SM_SC_ONLY (docs/fidelity.md).
#
# Subscriptions: MicroPython's NimBLE binding never reports a CCCD write (no
# _IRQ_GATTS_WRITE for it: extmod/nimble/modbluetooth_nimble.c, "This is event is
# not called for the CCCD") and gatts_notify sends whether or not the client
# subscribed. So this module does not know who listens: send() notifies on any
# authenticated link, and the app pushes nothing until the host said HELLO on it
# (the host subscribes before its HELLO). The battery level goes out with
# gatts_write(..., True), where NimBLE notifies the clients that subscribed.
# Fragmentation of frames into ATT payloads is pen/link.py's job; this module
# moves single ATT payloads.
import bluetooth
import json
import os
from binascii import hexlify, unhexlify

from pen.pairing import PairingGate

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

PEN_SERVICE_UUID = "4a780001-387c-4d32-bf79-1aa4c9d3edbc"
REQUEST_CHAR_UUID = "4a780002-387c-4d32-bf79-1aa4c9d3edbc"
EVENT_CHAR_UUID = "4a780003-387c-4d32-bf79-1aa4c9d3edbc"
# MCUmgr's SMP service (pen/smp.py): its UUIDs are the standard's, so third-party
# tools find it (smpclient, smpmgr, nRF Connect Device Manager).
SMP_SERVICE_UUID = "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
SMP_CHAR_UUID = "da2e7828-fbce-4e01-ae9e-261174997c48"
PREFERRED_MTU = const(247)
ADVERTISED_NAME_PREFIX = "ScalpPen"

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_CONNECTION_UPDATE = const(27)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)

_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_READ_AUTHENTICATED = const(0x0400)
_FLAG_WRITE_AUTHENTICATED = const(0x2000)

_IO_CAPABILITY_DISPLAY_ONLY = const(0)
_PASSKEY_ACTION_DISPLAY = const(3)

_ADV_TYPE_FLAGS = const(0x01)
_ADV_TYPE_UUID128_COMPLETE = const(0x07)
_ADV_TYPE_SHORT_NAME = const(0x08)
_ADV_TYPE_NAME = const(0x09)
_ADV_MAX = const(31)
_ADV_INTERVAL_US = const(100000)

_RX_BUFFER = const(512)  # largest ATT attribute value
_MAX_BONDS = const(8)  # hosts; NimBLE keeps two secrets per bond (ours, the peer's)
_SEC_OUR = const(1)  # BLE_STORE_OBJ_TYPE_OUR_SEC
_SEC_PEER = const(2)  # BLE_STORE_OBJ_TYPE_PEER_SEC
BOND_TYPES = (_SEC_OUR, _SEC_PEER)
_KEY_SIZE = const(16)  # bytes: the only encryption key size the pen accepts
# NimBLE's struct ble_store_value_sec (host/ble_store.h), the value of a bond
# secret, starts with the peer's ble_addr_t (7 bytes), then key_size (uint8): the
# only fields the pen reads from it (the rest is laid out by the C compiler).
_VALUE_KEY_SIZE = const(7)
_DEFAULT_MTU = const(23)
_ATT_HEADER = const(3)

_PEN_SERVICE = (
    bluetooth.UUID(PEN_SERVICE_UUID),
    (
        (bluetooth.UUID(REQUEST_CHAR_UUID),
         _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE | _FLAG_WRITE_AUTHENTICATED),
        (bluetooth.UUID(EVENT_CHAR_UUID), _FLAG_NOTIFY | _FLAG_READ_AUTHENTICATED),
    ),
)
_SMP_SERVICE = (
    bluetooth.UUID(SMP_SERVICE_UUID),
    ((bluetooth.UUID(SMP_CHAR_UUID),
      _FLAG_WRITE_NO_RESPONSE | _FLAG_NOTIFY | _FLAG_WRITE_AUTHENTICATED),),
)

_DIS_SERVICE = (
    bluetooth.UUID(0x180A),
    (
        (bluetooth.UUID(0x2A29), _FLAG_READ),  # manufacturer name
        (bluetooth.UUID(0x2A24), _FLAG_READ),  # model number
        (bluetooth.UUID(0x2A25), _FLAG_READ),  # serial number
        (bluetooth.UUID(0x2A26), _FLAG_READ),  # firmware revision
        (bluetooth.UUID(0x2A27), _FLAG_READ),  # hardware revision
    ),
)
_BATTERY_SERVICE = (
    bluetooth.UUID(0x180F),
    ((bluetooth.UUID(0x2A19), _FLAG_READ | _FLAG_NOTIFY),),
)
_DIS_FIELDS = ("manufacturer", "model", "serial", "firmware", "hardware")


def _adv_field(kind, value):
    return bytes((len(value) + 1, kind)) + value


def advertising_payload(service_uuid, short_name=ADVERTISED_NAME_PREFIX):
    # Flags (LE general discoverable, no BR/EDR), the pen's service UUID and, in
    # the bytes left, the shortened name (the complete one is in the scan
    # response; passive scanners and bumble's virtual link see only this).
    payload = (_adv_field(_ADV_TYPE_FLAGS, b"\x06")
               + _adv_field(_ADV_TYPE_UUID128_COMPLETE, bytes(bluetooth.UUID(service_uuid))))  # type: ignore[call-overload]  # stub lacks bytes(UUID)
    room = _ADV_MAX - len(payload) - 2
    if room > 0 and short_name:
        payload += _adv_field(_ADV_TYPE_SHORT_NAME, short_name.encode()[:room])
    return payload


def scan_response_payload(name):
    return _adv_field(_ADV_TYPE_NAME, name.encode()[:29])


def _uptime_ms():
    # Used only when no clock is given (the app gives the pen's own time).
    import time
    try:
        return time.ticks_ms()  # type: ignore[attr-defined]  # MicroPython
    except AttributeError:
        return int(time.monotonic() * 1000)


def address_key(addr_type, addr):
    # The key NimBLE stores a bond under (ble_addr_t: type, then the address LSB
    # first) for an address as the IRQs give it (most significant byte first).
    return bytes((addr_type,)) + bytes(reversed(bytes(addr)))


def random_passkey():
    return int.from_bytes(os.urandom(4), "big") % 1000000


class BondStore:
    # Secrets of the BLE stack (_IRQ_GET_SECRET / _IRQ_SET_SECRET), kept in a JSON
    # file: {"host": key hex or null, "bonds": [[sec_type, key hex, value hex], ...]}
    # oldest first (a plain list, the older format, still loads). A bond is the
    # two secrets NimBLE keeps under the peer's address (SEC_OUR, SEC_PEER); the
    # stack's other secrets (its own IRK) are kept too but are no bond. "host" is
    # the bond of the host that set the permit key: never evicted.

    def __init__(self, path, max_bonds=_MAX_BONDS):
        self.path = path
        self.max_bonds = max_bonds
        self.entries = []
        self.host = None
        self.load()

    def load(self):
        # The file, or the temporary file a save left when power went between its
        # remove and rename (where rename cannot replace): bonds survive either way.
        self.entries = []
        self.host = None
        raw = None
        for path in (self.path, self.path + ".tmp"):
            try:
                with open(path, "r") as f:
                    raw = json.load(f)
                break
            except (OSError, ValueError):
                pass
        if isinstance(raw, dict):
            try:
                self.host = unhexlify(raw["host"]) if raw.get("host") else None
            except (ValueError, TypeError):
                self.host = None
            raw = raw.get("bonds")
        if not isinstance(raw, list):
            return
        for item in raw:
            try:
                self.entries.append([int(item[0]), unhexlify(item[1]), unhexlify(item[2])])
            except (ValueError, TypeError, IndexError):
                pass

    def save(self):
        raw = {"host": hexlify(self.host).decode() if self.host else None,
               "bonds": [[e[0], hexlify(e[1]).decode(), hexlify(e[2]).decode()]
                         for e in self.entries]}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(raw, f)
        try:
            os.rename(tmp, self.path)  # atomic replace on littlefs
        except OSError:
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.rename(tmp, self.path)

    def get(self, sec_type, index, key):
        # key None: the index-th secret of that type (NimBLE iterating its bonds).
        # A key is matched exactly: MicroPython's binding passes BLE_ADDR_ANY (seven
        # zero bytes) when NimBLE iterates SEC_OUR, which matches no bond.
        if key is None:
            i = 0
            for e in self.entries:
                if e[0] == sec_type:
                    if i == index:
                        return e[2]
                    i += 1
            return None
        key = bytes(key)
        for e in self.entries:
            if e[0] == sec_type and e[1] == key:
                return e[2]
        return None

    def set(self, sec_type, key, value):
        # value None deletes, and answers True only when something was deleted:
        # NimBLE deletes again and again until told there is nothing left
        # (ble_store_util_delete_all), so an unconditional True would never end.
        # A new host in a full table takes the place of the oldest host that is
        # not the permit key's; when there is none, False (nothing stored).
        key = bytes(key)
        found = -1
        for i in range(len(self.entries)):
            e = self.entries[i]
            if e[0] == sec_type and e[1] == key:
                found = i
                break
        if value is None:
            if found < 0:
                return False
            self.entries.pop(found)
            return self._saved()
        if sec_type in BOND_TYPES and key not in self.peers() \
                and self.count() >= self.max_bonds:
            victim = None
            for peer in self.peers():
                if peer != self.host:
                    victim = peer
                    break
            if victim is None:
                return False
            self._drop(victim)
        if found >= 0:
            self.entries.pop(found)
        self.entries.append([sec_type, key, bytes(value)])
        return self._saved()

    def revoke_except(self, keep):
        # Forget every host's bond but `keep`'s, which becomes the permit key's
        # host. -> the keys of the hosts forgotten.
        gone = [p for p in self.peers() if p != keep]
        for peer in gone:
            self._drop(peer)
        self.host = bytes(keep) if keep is not None else None
        self._saved()
        return gone

    def peers(self):
        # the hosts with a bond, oldest first
        out = []
        for e in self.entries:
            if e[0] in BOND_TYPES and e[1] not in out:
                out.append(e[1])
        return out

    def count(self):
        # hosts with a whole bond (both halves): a pairing cut between NimBLE's two
        # writes (ble_sm_persist_keys: ours, then the peer's) leaves half of one,
        # which can never encrypt a link, and must not close the pen to pairing
        # (pairable) as an owner would
        n = 0
        for peer in self.peers():
            if self.get(_SEC_OUR, 0, peer) is not None and \
                    self.get(_SEC_PEER, 0, peer) is not None:
                n += 1
        return n

    def clear(self):
        self.entries = []
        self.host = None
        self._saved()

    def _drop(self, peer):
        # a host's whole bond (every secret under its address), never half of one
        self.entries = [e for e in self.entries if e[1] != peer]
        if peer == self.host:
            self.host = None

    def _saved(self):
        try:
            self.save()
        except OSError:
            return False
        return True


class PenBle:
    # info: dict with "name", "manufacturer", "model", "serial", "firmware",
    #   "hardware" (str) and optionally "battery" (0..100).
    # on_rx(conn, data): one ATT write to the request characteristic; called from
    #   the BLE IRQ, so it should only queue the bytes.
    # on_passkey(conn, passkey): show passkey (int) on the display; None clears.
    # on_link(up): called when a central connects or goes, and when the link's
    #   authentication changes; up is True on an authenticated (encrypted + MITM)
    #   link. Whether the host listens is the app's business (HELLO).
    # window_open(): True while the pairing window opened on the pen is open.
    # clock(): milliseconds that never go back (the failed-passkey backoff).
    # notes: ("paired", key) and ("revoked", [keys]) for the app to log; a key is
    #   NimBLE's ble_addr_t: the address type, then the address, LSB first.

    def __init__(self, ble, info, secrets_path, on_rx, on_passkey=None, on_link=None,
                 passkey_source=random_passkey, window_open=None, clock=None, on_smp=None):
        self._ble = ble
        self._on_rx = on_rx
        self._on_smp = on_smp
        self._on_passkey = on_passkey
        self._on_link = on_link
        self._passkey_source = passkey_source
        self._window_open = window_open
        self.gate = PairingGate(clock or _uptime_ms)
        self.bonds = BondStore(secrets_path)
        self.peer = None  # the linked host's bond key
        self.notes = []
        self._pairing = False  # a passkey was shown on this link; no outcome yet
        self._may_bond = False  # this link's pairing showed an allowed passkey
        self.name = info.get("name") or ADVERTISED_NAME_PREFIX
        self.conn = None
        self.mtu = _DEFAULT_MTU
        self.encrypted = False
        self.authenticated = False
        self.passkey = None
        self._link_up = False
        self.advertising = False

        ble.irq(self._irq)
        ble.active(True)
        ble.config(gap_name=self.name, io=_IO_CAPABILITY_DISPLAY_ONLY, mitm=True,
                   le_secure=True, bond=True, mtu=PREFERRED_MTU)
        handles = ble.gatts_register_services((_PEN_SERVICE, _DIS_SERVICE, _BATTERY_SERVICE,
                                               _SMP_SERVICE))
        self.rx_handle, self.tx_handle = handles[0]
        self.dis_handles = handles[1]
        self.battery_handle = handles[2][0]
        self.smp_handle = handles[3][0]
        ble.gatts_set_buffer(self.rx_handle, _RX_BUFFER)
        # one write: the pen's MTU is at most PREFERRED_MTU (NimBLE keeps 20 bytes by
        # default and cuts longer writes short); SMP joins writes by its header
        ble.gatts_set_buffer(self.smp_handle, PREFERRED_MTU - _ATT_HEADER)
        for i in range(len(_DIS_FIELDS)):
            value = info.get(_DIS_FIELDS[i]) or ""
            ble.gatts_write(self.dis_handles[i], str(value).encode())
        ble.gatts_write(self.battery_handle, bytes((self._pct(info.get("battery", 100)),)))
        self._adv = advertising_payload(PEN_SERVICE_UUID)
        self._resp = scan_response_payload(self.name)
        self.advertise()

    # -- public ------------------------------------------------------------------

    @property
    def connected(self):
        return self.conn is not None

    @property
    def link_up(self):
        return self._link_up

    @property
    def payload_size(self):
        # Largest ATT payload one notification or write carries.
        return self.mtu - _ATT_HEADER

    def advertise(self):
        self._ble.gap_advertise(_ADV_INTERVAL_US, adv_data=self._adv, resp_data=self._resp)
        self.advertising = True

    def stop_advertising(self):
        self._ble.gap_advertise(None)
        self.advertising = False

    def send(self, data):
        # Notify one ATT payload on the event characteristic. False (nothing
        # sent) unless the link is authenticated. NimBLE sends it whether or not
        # the client subscribed: the caller decides when the host listens.
        if self.conn is None or not self.authenticated:
            return False
        if len(data) > self.mtu - _ATT_HEADER:
            raise ValueError("payload larger than MTU - 3")
        self._ble.gatts_notify(self.conn, self.tx_handle, data)
        return True

    def send_smp(self, data):
        # Notify an SMP answer on the SMP characteristic, in pieces of MTU - 3.
        # False (nothing sent) unless the link is authenticated.
        if self.conn is None or not self.authenticated:
            return False
        step = self.mtu - _ATT_HEADER
        try:
            for i in range(0, len(data), step):
                self._ble.gatts_notify(self.conn, self.smp_handle, data[i:i + step])
        except OSError:
            return False  # the link went, or the stack is out of buffers: the client retries
        return True

    def set_battery(self, pct):
        # send_update: the stack notifies the clients that subscribed (NimBLE's
        # ble_gatts_chr_updated; the pen cannot see the CCCD itself).
        self._ble.gatts_write(self.battery_handle, bytes((self._pct(pct),)), True)

    def disconnect(self):
        if self.conn is not None:
            self._ble.gap_disconnect(self.conn)

    def forget_bonds(self):
        self.bonds.clear()

    def pairable(self):
        # A pen without a bond pairs; one with a bond only inside the window.
        return self.bonds.count() == 0 or bool(self._window_open and self._window_open())

    def revoke_others(self):
        # The linked host set a new permit key: every other host's bond goes.
        # -> the keys forgotten.
        if self.peer is None:
            return []
        gone = self.bonds.revoke_except(self.peer)
        self.notes.append(("revoked", gone))
        return gone

    def shutdown(self):
        self.disconnect()
        self.stop_advertising()
        self._ble.active(False)

    # -- internals -----------------------------------------------------------------

    @staticmethod
    def _pct(pct):
        pct = int(pct)
        return 0 if pct < 0 else (100 if pct > 100 else pct)

    def _update_link(self):
        # A new link, a lost one or a change of its authentication: the caller
        # drops what it queued from the link before (even when up stays False).
        self._link_up = self.conn is not None and self.authenticated
        if self._on_link is not None:
            self._on_link(self._link_up)

    def _show_passkey(self, conn, passkey):
        self.passkey = passkey
        if self._on_passkey is not None:
            self._on_passkey(conn, passkey)

    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            conn, handle = data
            if handle == self.rx_handle:
                payload = self._ble.gatts_read(self.rx_handle)
                if payload:
                    self._on_rx(conn, payload)
            elif handle == self.smp_handle and self._on_smp is not None:
                payload = self._ble.gatts_read(self.smp_handle)
                if payload:
                    self._on_smp(conn, payload)
        elif event == _IRQ_CENTRAL_CONNECT:
            conn = data[0]
            if self.conn is not None:
                # One central at a time.
                self._ble.gap_disconnect(conn)
                return
            self.conn = conn
            self.peer = address_key(data[1], data[2])
            self._pairing = False
            self._may_bond = False
            self.mtu = _DEFAULT_MTU
            self.encrypted = False
            self.authenticated = False
            self.advertising = False
            try:
                self._ble.gattc_exchange_mtu(conn)
            except OSError:
                pass
            self._update_link()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] != self.conn:
                return
            self.conn = None
            self.peer = None
            self._may_bond = False
            self.mtu = _DEFAULT_MTU
            self.encrypted = False
            self.authenticated = False
            if self._pairing:
                self._pairing = False
                self.gate.failed()  # a passkey shown and the link gone: no success
            if self.passkey is not None:
                self._show_passkey(data[0], None)
            self._update_link()
            self.advertise()
        elif event == _IRQ_MTU_EXCHANGED:
            conn, mtu = data
            if conn == self.conn:
                self.mtu = mtu
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, authenticated, bonded, key_size = data
            if conn != self.conn:
                return
            was = self.authenticated
            good = bool(encrypted and authenticated and bonded and key_size == _KEY_SIZE)
            if self._pairing:
                # the outcome of the pairing this link's passkey was shown for
                self._pairing = False
                if good:
                    self.gate.succeeded()
                else:
                    self.gate.failed()
                    self._may_bond = False
            self.encrypted = bool(encrypted)
            self.authenticated = good
            if self.passkey is not None:
                self._show_passkey(conn, None)
            if authenticated and encrypted and not good:
                # MITM but a short key or no bond: below the pen's floor.
                self._ble.gap_disconnect(conn)
            if self.authenticated != was:
                self._update_link()
        elif event == _IRQ_PASSKEY_ACTION:
            conn, action, _number = data
            if action == _PASSKEY_ACTION_DISPLAY and conn == self.conn \
                    and self.gate.allows(self.bonds.count() > 0, self.pairable()):
                passkey = self._passkey_source()
                self._pairing = True
                self._may_bond = True
                self._show_passkey(conn, passkey)
                self._ble.gap_passkey(conn, action, passkey)
            elif action == _PASSKEY_ACTION_DISPLAY:
                # Pairing closed (a bond and no window) or backing off: no passkey;
                # dropping the link ends the pairing, nothing is stored.
                self._ble.gap_disconnect(conn)
            else:
                # Display-only: nothing to type or confirm; refuse.
                self._ble.gap_passkey(conn, action, 0)
        elif event == _IRQ_GET_SECRET:
            sec_type, index, key = data
            return self.bonds.get(sec_type, index, key)
        elif event == _IRQ_SET_SECRET:
            sec_type, key, value = data
            return self._set_secret(sec_type, key, value)
        elif event == _IRQ_CONNECTION_UPDATE:
            pass
        return None

    def _set_secret(self, sec_type, key, value):
        # False stores (or deletes) nothing; NimBLE then ends the pairing without
        # a bond (ble_store_write: ESTORE_CAP, and its round-robin finds no peer
        # to evict: BondStore.get).
        if sec_type not in BOND_TYPES:
            return self.bonds.set(sec_type, key, value)  # the stack's own IRK
        if value is None:
            # NimBLE forgetting a host (a repeated pairing): only while pairing is
            # open, or a stranger with a host's address would erase its bond.
            return self.pairable() and self.bonds.set(sec_type, key, value)
        if not self._may_bond:
            return False  # no passkey shown for it: Just Works, or not allowed
        if len(value) <= _VALUE_KEY_SIZE or value[_VALUE_KEY_SIZE] != _KEY_SIZE:
            return False  # a key shorter than 16 bytes is no bond
        stored = self.bonds.set(sec_type, key, value)
        if stored and sec_type == _SEC_PEER:
            self.peer = bytes(key)  # the identity address the host is bonded under
            self.notes.append(("paired", self.peer))
        return stored
