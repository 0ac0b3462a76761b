"""What copying a read out of the page cache costs here, by method: why the native path's copy
threads read from a mapping of the file (lioctl/tcmu/_fastpath.c, map_read) and not with
preadv2.

    bash tests/kernel/boot.sh bash -c '/opt/lioctl-venv/bin/python bench/copy_cost.py'   # the TCG guest
    python3 bench/copy_cost.py                                                           # the host

Builds a small C program with cc, writes a 64 MiB file (BENCH_FILE, /tmp/copy_cost.dat) into
the page cache, touches every page of a read-only mapping of it once, then copies 1 MiB and
4 KiB blocks at random offsets into an anonymous buffer (the data area's stand-in): pread,
glibc's memcpy from the mapping, the handler's 16-byte-wide loop, `rep movsb` and `rep movsq`,
and mincore(2) plus the wide loop (what the handler does per read). Microseconds per copy,
every round (BENCH_ROUNDS, 3) and the median."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

SOURCE = r"""
#define _GNU_SOURCE
#include <emmintrin.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void wide(uint8_t *d, const uint8_t *s, size_t n)
{
    while (n >= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)s), b = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + 32)), e = _mm_loadu_si128((const __m128i *)(s + 48));
        _mm_storeu_si128((__m128i *)d, a); _mm_storeu_si128((__m128i *)(d + 16), b);
        _mm_storeu_si128((__m128i *)(d + 32), c); _mm_storeu_si128((__m128i *)(d + 48), e);
        s += 64, d += 64, n -= 64;
    }
}
static void movsb(void *d, const void *s, size_t n) { __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory"); }
static void movsq(void *d, const void *s, size_t n) { n /= 8; __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(n) :: "memory"); }

int main(int argc, char **argv)
{
    const char *path = argv[1];
    size_t blk = strtoul(argv[2], 0, 0), size = 64 << 20, nb = size / blk;
    int n = atoi(argv[3]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char *w = malloc(1 << 20);
    memset(w, 0x5a, 1 << 20);
    for (size_t o = 0; o < size; o += 1 << 20)
        if (pwrite(fd, w, 1 << 20, o) != 1 << 20) return 1;
    uint8_t *buf = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    const uint8_t *m = mmap(0, size, PROT_READ, MAP_SHARED, fd, 0);
    volatile uint8_t sink = 0;
    for (size_t o = 0; o < size; o += 4096) sink += m[o];        /* every page mapped: no faults timed */
    unsigned char vec[256];
    unsigned r = 1;
    double t;
#define RUN(name, stmt) do { t = now(); for (int k = 0; k < n; k++) { r = r * 1103515245 + 12345; size_t o = (size_t)((r >> 8) % nb) * blk; stmt; } \
        printf("%s\t%.2f\n", name, (now() - t) / n * 1e6); } while (0)
    RUN("pread", if (pread(fd, buf, blk, o) != (ssize_t)blk) return 1);
    RUN("glibc memcpy", memcpy(buf, m + o, blk));
    RUN("wide loop", wide(buf, m + o, blk));
    RUN("rep movsb", movsb(buf, m + o, blk));
    RUN("rep movsq", movsq(buf, m + o, blk));
    RUN("mincore + wide loop", { if (mincore((void *)(m + o), blk, vec)) return 1; wide(buf, m + o, blk); });
    unlink(path);
    return sink == 1;
}
"""


def main() -> int:
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    path = os.environ.get("BENCH_FILE", "/tmp/copy_cost.dat")
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "copy_cost.c"), os.path.join(d, "copy_cost")
        with open(src, "w") as f:
            f.write(SOURCE)
        subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
        for blk, n in ((1 << 20, 40), (4096, 4000)):
            runs: dict[str, list[float]] = {}
            for _ in range(rounds):
                out = subprocess.run([exe, path, str(blk), str(n)], check=True, capture_output=True, text=True).stdout
                for line in out.splitlines():
                    name, us = line.split("\t")
                    runs.setdefault(name, []).append(float(us))
            print(f"{blk} bytes per copy, {n} copies per round, µs per copy (median; every round)")
            for name, us in runs.items():
                print(f"  {name:<22}{statistics.median(us):>10.1f}   " + " ".join(f"{u:.1f}" for u in us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
