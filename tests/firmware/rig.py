# Test rig: a Pen + Handler + Store over an fs, driven against a Plant in virtual
# time (10 ms ticks). MicroPython-compatible: the in-VM tests use it too.
import json

from pen import wire
from pen.board import Board
from pen.core import Pen
from pen.handler import Handler
from pen.permit import ack_tag, sign, time_tag
from pen.store import Store
from plant import Plant

KEY = bytes(range(1, 33))
T0 = 1750000000  # the pen's clock at the start of a test (Unix s)
_board_doc = None
_time_nonces = [0]


def signed_time(unix, key=KEY, nonce=None):
    # SET_TIME fields as the host sends them: a fresh nonce and the key's tag.
    if nonce is None:
        _time_nonces[0] += 1
        n = _time_nonces[0]
        nonce = b"T" + bytes([n & 0xFF, (n >> 8) & 0xFF, (n >> 16) & 0xFF]) + bytes(4)
    return {"unix": unix, "nonce": nonce, "tag": time_tag(key, unix, nonce)}


def signed_ack(up_to_seq, key=KEY):
    return {"up_to_seq": up_to_seq, "tag": ack_tag(key, up_to_seq)}


def board_doc(path=None):
    global _board_doc
    if path is not None or _board_doc is None:
        with open(path or "hardware/boards/pen-s3-revb.json") as f:
            _board_doc = json.load(f)
    return _board_doc


def make_board(**limits):
    doc = json.loads(json.dumps(board_doc()))
    for k in limits:
        doc["limits"][k] = limits[k]
    return Board(doc)


class Rig:
    def __init__(self, fs, board=None, plant=None, clock=T0, key=KEY, home=True):
        self.fs = fs
        self.board = board or make_board()
        self.plant = plant or Plant()
        self.t = 0
        self.seq = 0
        self.nonce = 0
        self.events = []
        self.max_duty = 0
        self.boot()
        if key:
            self.req(wire.T_SET_KEY, {"key": key}, auth=True)
        if clock:
            self.req(wire.T_SET_TIME, signed_time(clock, key or KEY))
        if home:
            self.run(1500)

    def boot(self, reset_code=0, rtc=0):
        # A (re)boot: new Store and Pen over the same files; the plant keeps its state.
        # rtc: what the RTC says (0: it lost the time with the power).
        self.store = Store(self.fs)
        self.pen = Pen(self.board, self.store, rtc, reset_code)
        self.h = Handler(self.pen)
        self.h.hello = True

    def tick(self):
        self.t += 10
        out = self.pen.tick(self.t, self.plant.inp)
        if out.motor_duty > self.max_duty:
            self.max_duty = out.motor_duty
        self.events.extend(out.events)
        self.plant.step(out, 10)
        return out

    def run(self, ms, until=None):
        out = None
        for _ in range(ms // 10):
            out = self.tick()
            if until is not None and until(out):
                break
        return out

    def idle(self, seconds, step_s=60):
        # Time passes with nothing moving: one tick a step (the core accepts long
        # gaps outside a session), the clock and the running count go on.
        for _ in range(seconds // step_s):
            self.t += step_s * 1000
            self.pen.tick(self.t, self.plant.inp)
            self.plant.step(self.pen.out, 10)

    def req(self, t, fields=None, auth=True):
        self.seq = (self.seq + 1) & 0xFFFF
        frames = self.h.handle(wire.encode(t, self.seq, fields or {}), auth)
        return wire.decode(frames[0])

    def code(self, t, fields=None, auth=True):
        # -> 0 for ACK, else the NACK's error code
        rt, _, f = self.req(t, fields, auth)
        return f["error"] if rt == wire.T_NACK else 0

    def permit(self, depth=1000, duration=600, issued=None, expires=None, key=KEY, nonce=None,
               patient=bytes(8)):
        now = self.pen.clock() or T0
        if nonce is None:
            self.nonce += 1
            nonce = b"N" + bytes([self.nonce & 0xFF, (self.nonce >> 8) & 0xFF]) + bytes(5)
        p = {"max_depth_um": depth, "max_duration_s": duration,
             "issued_at": now - 10 if issued is None else issued,
             "expires_at": now + 3600 if expires is None else expires, "nonce": nonce,
             "patient": patient}
        p["tag"] = sign(key, p)
        return p

    def arm(self, **kw):
        return self.code(wire.T_ARM, self.permit(**kw))

    def start_session(self, depth=1000, duration=600):
        assert self.arm(depth=depth, duration=duration) == 0
        assert self.code(wire.T_SET_DEPTH, {"depth_um": depth}) == 0
        return self.code(wire.T_START)

    def end_session(self):
        # STOP, and a second STOP if the first only paused (a session stopped in its
        # first 30 s of needling is resumable): the session is over. -> the first code
        code = self.code(wire.T_STOP)
        if self.pen.state == wire.S_PAUSED and self.pen.session_open:
            assert self.code(wire.T_STOP) == 0
        return code

    def status(self):
        return self.req(wire.T_GET_STATUS)[2]

    def log(self, kind=None):
        recs = []
        seq = 0
        while True:
            first, last, page = self.store.read(seq, 160)
            for r in page:
                from pen.store import unpack_record
                recs.append(unpack_record(r))
            if not page:
                break
            seq = recs[-1]["seq"] + 1
        if kind is not None:
            recs = [r for r in recs if r["kind"] == kind]
        return recs

    def refused(self, kind, req=None):
        # Codes of every refusal of `kind` (for request type `req`), the counted
        # repeats included: time passes first so the pen writes its counts.
        self.idle(60)
        out = []
        for x in self.log():
            if x["kind"] == kind and (req is None or x["flags"] == req):
                out.append(x["code"])
            elif (x["kind"] == wire.K_REFUSALS_REPEATED and x["b"] == kind
                  and (req is None or x["flags"] == req)):
                out.extend([x["code"]] * x["a"])
        return sorted(out)

    def notices(self):
        return [f["code"] for t, f in self.events if t == wire.T_EV_NOTICE]
