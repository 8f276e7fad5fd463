# CBOR (RFC 8949), the subset MCUmgr's SMP bodies use: unsigned and negative
# integers, byte and text strings, arrays, maps, false, true, null. Definite
# lengths only, nesting bounded, every length checked against what is left: a
# malformed or hostile body raises ValueError and nothing else. MicroPython has
# no cbor module; this is the pen's own (the host uses cbor2 through smpclient).
import struct

_MAX_DEPTH = 8


def _head(major, n):
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 0x100:
        return bytes((major << 5 | 24, n))
    if n < 0x10000:
        return bytes((major << 5 | 25,)) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes((major << 5 | 26,)) + struct.pack(">I", n)
    return bytes((major << 5 | 27,)) + struct.pack(">Q", n)


def encode(obj, out=None):
    # -> bytes (appends to `out`, a bytearray, when given).
    top = out is None
    if top:
        out = bytearray()
    if obj is True or obj is False:
        out.append(0xF5 if obj else 0xF4)
    elif obj is None:
        out.append(0xF6)
    elif isinstance(obj, int):
        out.extend(_head(0, obj) if obj >= 0 else _head(1, -1 - obj))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        out.extend(_head(2, len(obj)))
        out.extend(obj)
    elif isinstance(obj, str):
        b = obj.encode()
        out.extend(_head(3, len(b)))
        out.extend(b)
    elif isinstance(obj, (list, tuple)):
        out.extend(_head(4, len(obj)))
        for item in obj:
            encode(item, out)
    elif isinstance(obj, dict):
        out.extend(_head(5, len(obj)))
        for k in obj:
            encode(k, out)
            encode(obj[k], out)
    else:
        raise ValueError("cbor: cannot encode")
    return bytes(out) if top else out


def _arg(buf, i, info):
    # -> (argument, next index)
    if info < 24:
        return info, i
    size = (1, 2, 4, 8)[info - 24] if 24 <= info <= 27 else 0
    if not size:
        raise ValueError("cbor: indefinite or reserved length")
    if i + size > len(buf):
        raise ValueError("cbor: truncated")
    n = 0
    for k in range(size):
        n = n << 8 | buf[i + k]
    return n, i + size


def _item(buf, i, depth):
    if depth > _MAX_DEPTH:
        raise ValueError("cbor: nested too deep")
    if i >= len(buf):
        raise ValueError("cbor: truncated")
    b = buf[i]
    major = b >> 5
    n, i = _arg(buf, i + 1, b & 0x1F)
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        if n > len(buf) - i:
            raise ValueError("cbor: truncated")
        raw = bytes(buf[i:i + n])
        if major == 3:
            try:
                return raw.decode(), i + n
            except UnicodeError:
                raise ValueError("cbor: bad text")
        return raw, i + n
    if major == 4:
        if n > len(buf) - i:  # each item takes a byte at least
            raise ValueError("cbor: truncated")
        out = []
        for _ in range(n):
            v, i = _item(buf, i, depth + 1)
            out.append(v)
        return out, i
    if major == 5:
        if 2 * n > len(buf) - i:
            raise ValueError("cbor: truncated")
        d = {}
        for _ in range(n):
            k, i = _item(buf, i, depth + 1)
            if isinstance(k, (list, dict)):
                raise ValueError("cbor: bad map key")
            v, i = _item(buf, i, depth + 1)
            d[k] = v
        return d, i
    if major == 7 and b in (0xF4, 0xF5, 0xF6):
        return (False, True, None)[b - 0xF4], i
    raise ValueError("cbor: unsupported item")


def decode(buf):
    # The one item `buf` holds (trailing bytes are an error).
    v, i = _item(buf, 0, 0)
    if i != len(buf):
        raise ValueError("cbor: trailing bytes")
    return v
