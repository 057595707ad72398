"""Read TFRecord files of ``tf.train.Example`` without TensorFlow: the record framing and a minimal protobuf decoder.

A TFRecord file is a sequence of records, each::

    uint64 length (little endian) | uint32 masked crc32c(length) | data[length] | uint32 masked crc32c(data)

where ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32) and crc32c is the Castagnoli CRC.
:func:`iter_records` verifies both CRCs: a record whose data CRC is wrong is yielded as a :class:`TFRecordError`
(the next record can still be read); a wrong length CRC or a truncated file ends the file with one.

``data`` is a serialized ``tf.train.Example``; :func:`parse_example` decodes it with the protobuf wire format::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }     # entries: key = 1 (string), value = 2 (Feature)
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }    # packed (wire type 2) or not (wire type 5)
    Int64List { repeated int64 value = 1 [packed]; }    # packed (wire type 2) or not (wire type 0)

into ``{name: list of bytes | list of float | list of int}``. Unknown fields are skipped, as protobuf does.
:func:`encode_example` and :func:`frame_record` write the same format (for tests and small exports).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = [
    "TFRecordError",
    "crc32c",
    "encode_example",
    "frame_record",
    "iter_records",
    "masked_crc32c",
    "parse_example",
]

_MASK_DELTA = 0xA282EAD8


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


class TFRecordError(ValueError):
    """A TFRecord or ``tf.train.Example`` that cannot be read; ``offset`` is the record's byte offset in its file."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.offset = offset


def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of ``data``, as TFRecord uses it (``crc32c(b"123456789") == 0xE3069283``)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord stores after the length and after the data."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord record holding ``data`` (length, its masked CRC, the data, its masked CRC)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def iter_records(path: str | Path) -> Iterator[tuple[int, bytes | TFRecordError]]:
    """``(offset, data)`` per record of a TFRecord file, or ``(offset, TFRecordError)`` for a corrupt one.

    A data CRC mismatch spoils only its record; a length CRC mismatch or a truncated record ends the file (the
    lengths after it cannot be trusted) with a last error.
    """
    with open(path, "rb") as f:
        blob = f.read()
    pos, end = 0, len(blob)
    while pos < end:
        offset = pos
        if end - pos < 12:
            yield offset, TFRecordError(f"truncated record header ({end - pos} bytes, 12 needed)", offset)
            return
        header = blob[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", blob[pos + 8 : pos + 12])
        if masked_crc32c(header) != length_crc:
            yield offset, TFRecordError("corrupt record: the CRC of its length does not match", offset)
            return
        pos += 12
        if end - pos < length + 4:
            yield offset, TFRecordError(f"truncated record: {length} data bytes announced, {end - pos} left", offset)
            return
        data = blob[pos : pos + length]
        (data_crc,) = struct.unpack("<I", blob[pos + length : pos + length + 4])
        pos += length + 4
        if masked_crc32c(data) != data_crc:
            yield offset, TFRecordError("corrupt record: the CRC of its data does not match", offset)
            continue
        yield offset, data


# --------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFRecordError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise TFRecordError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` per field of one message: an int (varint, fixed) or bytes (len-delim)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise TFRecordError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise TFRecordError("truncated 64-bit field")
            (value,) = struct.unpack("<Q", buf[pos : pos + 8])
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise TFRecordError(f"truncated field {number}: {size} bytes announced, {len(buf) - pos} left")
            value = buf[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > len(buf):
                raise TFRecordError("truncated 32-bit field")
            (value,) = struct.unpack("<I", buf[pos : pos + 4])
            pos += 4
        else:
            raise TFRecordError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _signed64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def _float32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _feature(buf: bytes, name: str) -> list[bytes] | list[float] | list[int]:
    kind, values = None, []
    for number, wire, value in _fields(buf):
        if number not in (1, 2, 3):
            continue
        if wire != 2:
            raise TFRecordError(f"feature {name!r}: field {number} must be a message")
        kind, values = number, []  # the last one of a oneof wins
        for inner, iwire, item in _fields(value):
            if inner != 1:
                continue
            if number == 1:
                if iwire != 2:
                    raise TFRecordError(f"feature {name!r}: bytes_list value must be length-delimited")
                values.append(bytes(item))
            elif number == 2:
                if iwire == 5:
                    values.append(_float32(item))
                elif iwire == 2:
                    if len(item) % 4:
                        raise TFRecordError(f"feature {name!r}: packed float_list of {len(item)} bytes")
                    values.extend(struct.unpack(f"<{len(item) // 4}f", item))
                else:
                    raise TFRecordError(f"feature {name!r}: float_list wire type {iwire}")
            else:
                if iwire == 0:
                    values.append(_signed64(item))
                elif iwire == 2:
                    pos = 0
                    while pos < len(item):
                        v, pos = _varint(item, pos)
                        values.append(_signed64(v))
                else:
                    raise TFRecordError(f"feature {name!r}: int64_list wire type {iwire}")
    return values if kind is not None else []


def parse_example(data: bytes) -> dict[str, list[bytes] | list[float] | list[int]]:
    """Decode a serialized ``tf.train.Example`` into ``{feature name: values}``; ``TFRecordError`` when malformed."""
    out: dict[str, list] = {}
    for number, wire, features in _fields(data):
        if number != 1:
            continue
        if wire != 2:
            raise TFRecordError("Example.features must be a message")
        for fnum, fwire, entry in _fields(features):
            if fnum != 1:
                continue
            if fwire != 2:
                raise TFRecordError("Features.feature entries must be messages")
            key, value = None, b""
            for enum, ewire, item in _fields(entry):
                if enum == 1 and ewire == 2:
                    try:
                        key = bytes(item).decode("utf-8")
                    except UnicodeDecodeError:
                        raise TFRecordError("a feature name is not valid UTF-8") from None
                elif enum == 2 and ewire == 2:
                    value = bytes(item)
            if key is None:
                raise TFRecordError("a feature without a name")
            out[key] = _feature(value, key)
    return out


# --------------------------------------------------------------------------- writing (tests, small exports)
def _encode_varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def encode_example(features: Mapping[str, bytes | str | float | int | Sequence]) -> bytes:
    """Serialize ``{name: value(s)}`` as a ``tf.train.Example`` (bytes/str -> bytes_list, float -> float_list,
    int -> int64_list; lists packed)."""
    entries = b""
    for name, values in features.items():
        if isinstance(values, (bytes, str, float, int)):
            values = [values]
        values = list(values)
        if values and isinstance(values[0], (bytes, str)):
            inner = b"".join(_len_field(1, v.encode("utf-8") if isinstance(v, str) else v) for v in values)
            feature = _len_field(1, inner)
        elif values and isinstance(values[0], float):
            feature = _len_field(2, _len_field(1, struct.pack(f"<{len(values)}f", *values)))
        else:
            feature = _len_field(3, _len_field(1, b"".join(_encode_varint(int(v)) for v in values)))
        entries += _len_field(1, _len_field(1, name.encode("utf-8")) + _len_field(2, feature))
    return _len_field(1, entries)
