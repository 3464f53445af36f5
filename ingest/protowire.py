"""The two protobuf wire primitives our fast decoders, tests and benchmarks hand-encode."""

from __future__ import annotations


def varint(n: int) -> bytes:
    """Encode an integer as a protobuf varint (negative numbers as 64-bit two's complement).

    >>> varint(1), varint(300), len(varint(-1))
    (b'\\x01', b'\\xac\\x02', 10)
    """
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """Encode a length-delimited field (wire type 2): tag, length, payload.

    >>> field(1, b"ab")
    b'\\n\\x02ab'
    """
    return varint(number << 3 | 2) + varint(len(payload)) + payload
