#!/usr/bin/env python3
"""Mint N distinct bench tokens (same shape and key as the shared harness's cold tokens) in parallel.

usage: bench/mint-tokens.py --dir /tmp/gwbench --count 200000 --out /tmp/gwbench/fresh/tokens.txt

Reuses the shared harness's gen_tokens.py (header, claims, signing) so the tokens are exactly
OpenMetadata-bot shaped like tokens/cold.txt: kid bench-key, RS256, exp 2100, a fresh jti each.
Signing is RSA-2048 (~0.3 ms per token per core), so this runs one process per CPU.
"""

import argparse
import multiprocessing
import os
import sys
import time

SHARED = os.environ.get("SHARED_BENCH", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
sys.path.insert(0, os.path.abspath(SHARED))

import gen_tokens  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

_key = None


def _init(pem_path):
    global _key
    with open(pem_path, "rb") as f:
        _key = serialization.load_pem_private_key(f.read(), password=None)


def _mint(args):
    count, now = args
    return [gen_tokens.sign_rs256(_key, gen_tokens.header(), gen_tokens.claims(now)) for _ in range(count)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default=os.environ.get("GWBENCH_DIR", "/tmp/gwbench"))
    p.add_argument("--count", type=int, default=200000)
    p.add_argument("--out", required=True)
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    pem = os.path.join(a.dir, "keys", "private.pem")
    now = int(time.time())
    chunk = 2000
    jobs = [(min(chunk, a.count - i), now) for i in range(0, a.count, chunk)]
    t0 = time.time()
    tmp = a.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with multiprocessing.Pool(a.procs, initializer=_init, initargs=(pem,)) as pool, open(tmp, "w") as out:
        for tokens in pool.imap_unordered(_mint, jobs):
            out.write("\n".join(tokens))
            out.write("\n")
    os.replace(tmp, a.out)
    print(f"minted {a.count} tokens in {time.time() - t0:.1f}s with {a.procs} processes -> {a.out}")


if __name__ == "__main__":
    main()
