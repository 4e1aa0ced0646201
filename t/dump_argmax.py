#!/usr/bin/env python3
"""A sampler for `decode --sampler`, in the standard library only: reads one logits .npy
record (f32, (vocab,)) per step on stdin, answers its argmax on stdout. With a FILE
argument it also saves the first record's raw bytes there (tests compare them)."""
import struct
import sys

f = sys.stdin.buffer
first = True
while True:
    pre = f.read(10)
    if len(pre) < 10:
        break
    header = f.read(int.from_bytes(pre[8:10], "little"))
    n = int(header.decode().split("(")[1].split(",")[0])
    body = f.read(n * 4)
    if first and len(sys.argv) > 1:
        open(sys.argv[1], "wb").write(pre + header + body)
    first = False
    x = struct.unpack("<%df" % n, body)
    print(max(range(n), key=x.__getitem__), flush=True)
