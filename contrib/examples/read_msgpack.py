#!/usr/bin/python3
"""read_msgpack.py — reads Validora's record stream (`validora verify -o FILE`: msgpack maps
one after another) and prints the number of records by status, then the total.

Usage: read_msgpack.py [FILE]...   (no FILE, or -: standard input)

Needs the Python msgpack module (Debian: python3-msgpack). Records are counted as they
come, so `tail -f results.mpk | read_msgpack.py` works while a run writes. A stream cut
short (a killed writer) or holding something other than records is reported with its byte
offset, after every complete record before it was counted. Exit status: 0, or 1 when a
file could not be read or a stream was damaged or truncated.
"""
import collections
import sys

import msgpack


class Counted:
    """A binary stream that counts the bytes read from it."""

    def __init__(self, stream):
        self.stream, self.n = stream, 0

    def read(self, size=-1):
        data = self.stream.read(size)
        self.n += len(data)
        return data


def count(stream, counts):
    """Adds the records of one stream to counts. Returns None, or (offset, what) where the
    stream stopped holding complete records."""
    src = Counted(stream)
    # Records are written by C; an email may hold bytes that are not UTF-8.
    unpacker = msgpack.Unpacker(src, raw=False, unicode_errors="surrogateescape")
    while True:
        at = unpacker.tell()
        try:
            record = next(unpacker)
        except StopIteration:
            break
        except (ValueError, msgpack.UnpackException) as e:
            return at, f"not msgpack ({e})"
        if not isinstance(record, dict) or not isinstance(record.get("status"), str):
            return at, "not a record"
        counts[record["status"]] += 1
    # The unpacker stops quietly at a record cut short: its bytes are read, not used.
    if unpacker.tell() != src.n:
        return unpacker.tell(), "truncated: the stream ends inside a record"
    return None


def main(argv):
    counts = collections.Counter()
    status = 0
    for name in argv[1:] or ["-"]:
        try:
            stream = sys.stdin.buffer if name == "-" else open(name, "rb")
        except OSError as e:
            print(f"read_msgpack.py: {name}: {e.strerror}", file=sys.stderr)
            status = 1
            continue
        with stream:
            bad = count(stream, counts)
        if bad:
            print(f"read_msgpack.py: {name}: byte {bad[0]}: {bad[1]}", file=sys.stderr)
            status = 1
    for st, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{st}\t{n}")
    print(f"total\t{sum(counts.values())}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
