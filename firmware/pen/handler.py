# Requests from the link -> core calls -> response frames. A frame that does not
# decode is answered with NACK(the decoder's code) and changes nothing; a request
# type the pen does not serve gets NACK(NOT_SUPPORTED). Events from the core's
# tick are encoded here too (event_frames), numbered by the pen's own counter.
import gc

from pen import wire
from pen.version import VERSION

_SHORT_PAGE = 8  # records in a LOG_PAGE when the heap has no room for a full one

CAPS = wire.CAP_LOG | wire.CAP_WEAR | wire.CAP_TELEMETRY | wire.CAP_PERMIT

# What an unauthenticated bench link (the board's UART) may ask: reading, and STOP,
# which is always safe. Anything that arms, moves or re-clocks the pen needs the
# paired BLE link.
BENCH_TYPES = (wire.T_HELLO, wire.T_GET_STATUS, wire.T_LOG_READ, wire.T_GET_WEAR, wire.T_STOP)
# Requests that change nothing: out of heap, they are answered BUSY (the host retries).
READ_TYPES = (wire.T_HELLO, wire.T_GET_STATUS, wire.T_LOG_READ, wire.T_GET_WEAR)


class Handler:
    def __init__(self, pen, caps_extra=0, bench=False):
        self.pen = pen
        self.bench = bench  # serve only BENCH_TYPES (an unauthenticated wired link)
        self.caps = CAPS | caps_extra
        if pen.board.standalone_enabled:
            self.caps |= wire.CAP_STANDALONE
        self.hello = False  # the host said HELLO on this link: events may flow
        self._ev_seq = 0
        self._detail = 0

    def link_reset(self):
        # The app calls this when a central connects or goes, or the link's
        # authentication changes: the host says HELLO again on the new link.
        self.hello = False

    def handle(self, frame, authenticated):
        # -> list of response frames (one, in practice).
        try:
            t, seq, f = wire.decode(frame)
        except wire.WireError as e:
            t = e.msg_type if e.msg_type is not None else 0
            return [self._nack(t & 0xFF, e.seq or 0, e.code)]
        except MemoryError:
            # No room to decode it (a fragmented heap): nothing changed; BUSY, and
            # the host retries a read.
            gc.collect()
            t = frame[1] if len(frame) > 1 else 0
            seq = frame[2] | (frame[3] << 8) if len(frame) > 3 else 0
            return [self._nack(t, seq, wire.E_BUSY)]
        except Exception:
            # the decoder itself failed: still answer, from the raw header
            t = frame[1] if len(frame) > 1 else 0
            seq = frame[2] | (frame[3] << 8) if len(frame) > 3 else 0
            return [self._nack(t, seq, wire.E_MALFORMED)]
        if self.bench and t not in BENCH_TYPES:
            return [self._nack(t, seq, wire.E_NOT_AUTHORIZED)]
        try:
            return [self._dispatch(t, seq, f, authenticated)]
        except wire.WireError as e:
            return [self._nack(t, seq, e.code)]
        except MemoryError:
            if t not in READ_TYPES:
                raise  # a change half made is not answered: the fail-safe takes over
            gc.collect()
            return [self._nack(t, seq, wire.E_BUSY)]

    def _ack_or_nack(self, t, seq, code):
        if code:
            return self._nack(t, seq, code, self._detail)
        return wire.encode(wire.T_ACK, seq, {"req_type": t})

    def _nack(self, t, seq, code, detail=0):
        return wire.encode(wire.T_NACK, seq, {"req_type": t & 0xFF, "error": code,
                                              "detail": detail & 0xFFFFFFFF})

    def _dispatch(self, t, seq, f, auth):
        pen = self.pen
        self._detail = 0
        if t == wire.T_GET_STATUS:
            return wire.encode(wire.T_STATUS, seq, pen.status())
        if t == wire.T_HELLO:
            self.hello = True
            return wire.encode(wire.T_INFO, seq, self.info())
        if t == wire.T_LOG_READ:
            n = f["max_records"]
            cap = wire.MAX_PAGE_RECORDS
            if pen.state == wire.S_RUNNING:
                cap = wire.RUNNING_PAGE_RECORDS  # a page must not stretch a control tick
            if n > cap:
                n = cap
            try:
                first, last, recs = pen.store.read(f["from_seq"], n)
                return wire.encode(wire.T_LOG_PAGE, seq, {"first_seq": first,
                                                          "last_seq": last, "records": recs})
            except MemoryError:
                # A fragmented heap has no room for a full page: answer a short one
                # (the host goes on from its last record) rather than fail the tick.
                recs = None
                gc.collect()
                first, last, recs = pen.store.read(f["from_seq"], _SHORT_PAGE)
                return wire.encode(wire.T_LOG_PAGE, seq, {"first_seq": first,
                                                          "last_seq": last, "records": recs})
        if t == wire.T_GET_WEAR:
            return wire.encode(wire.T_WEAR, seq, pen.wear_fields())
        if t == wire.T_SET_TIME:
            code = pen.set_time(f)
        elif t == wire.T_LOG_ACK:
            code = pen.log_ack(f)
        elif t == wire.T_ARM:
            code = pen.arm(f)
        elif t == wire.T_SET_DEPTH:
            code = pen.set_depth(f["depth_um"])
        elif t == wire.T_SET_SPEED:
            code = pen.set_speed(f["level"])
        elif t == wire.T_START:
            code = pen.start()
            if code == wire.E_INTERVAL_LOCKOUT:
                self._detail = pen.lockout_until()
            elif code in (wire.E_BATTERY_LOW, wire.E_CARTRIDGE_WORN):
                self._detail = pen.start_detail  # the percent needed, the minutes left
        elif t == wire.T_STOP:
            code = pen.stop()
        elif t == wire.T_SET_KEY:
            code = pen.set_key(f["key"], auth)
        else:
            # responses and events sent to the pen, or types it does not serve
            code = wire.E_NOT_SUPPORTED
        return self._ack_or_nack(t, seq, code)

    def info(self):
        pen = self.pen
        b = pen.board
        return {"proto_version": wire.PROTOCOL_VERSION, "caps": self.caps,
                "max_frame": wire.MAX_FRAME, "model": b.model[:64], "serial": pen.serial[:64],
                "fw_version": VERSION, "hw_rev": b.hw_rev[:16], "profile": b.profile[:16],
                "key_set": 1 if pen.store.c["key"] else 0, "limits": b.wire_limits,
                "update": pen.update[0], "update_version": pen.update[1][:32]}

    def event_frames(self, events):
        # Encode out.events; nothing until the host has said HELLO on this link.
        if not self.hello:
            return []
        frames = []
        for t, fields in events:
            frames.append(wire.encode(t, self._ev_seq, fields))
            self._ev_seq = (self._ev_seq + 1) & 0xFFFF
        return frames
