#!/usr/bin/env python3
"""How fast this machine's disk takes durable 1 MiB chunk writes, without
Cairn: the ceiling a 1 MiB PUT (three 1 MiB copies) runs into.

    scripts/disk-ceiling.py files|grouped|log [seconds] [writers] [dir]

files: each write is one chunk file as a node writes it: create, pwrite,
       fsync, posix_fadvise(DONTNEED) (unless DROP=0), rename, directory
       fsync; 12 node directories of 16 fan-out directories each.
grouped: chunk files with group commit: create, pwrite, rename, then wait
       for a `syncfs` round of its node that began after the rename (one
       syncfs per node and round covers every file of the round; with
       TWO_ROUNDS=1 also a round before the rename, so no name can point
       at data that is not durable).
log:   each write appends to one of 12 per-node logs at a reserved offset
       (4 KiB-aligned records); one fdatasync per log covers every append
       finished before it started (group commit), and a writer returns only
       after a sync that began after its own pwrite. Its pages stay cached
       (DROP does not apply), so on this VM it pays for fresh pages and its
       rate is if anything low.

`writers` threads write at once (a 1 MiB PUT ×16 has up to 48 chunk writes
in flight). Prints MiB/s and the PUT/s at three copies that it allows.
`dir` defaults to a fresh directory under /tmp (removed afterwards).
"""

import os
import shutil
import sys
import tempfile
import threading
import time

NODES = 12
SIZE = 1 << 20
RECORD = SIZE + 4096
DROP = os.environ.get("DROP", "1") == "1"


def chunk_files(root, stop, count, writer, payload):
    dirs = [f"{root}/n{n}/{f:02x}" for n in range(NODES) for f in range(16)]
    i = 0
    while time.time() < stop:
        d = dirs[(writer * 7919 + i * 104729) % len(dirs)]
        temp = f"{d}/.tmp-{writer}-{i}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.pwrite(fd, payload, 0)
        os.fsync(fd)
        if DROP:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        os.rename(temp, f"{d}/c-{writer}-{i}")
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        i += 1
        count[writer] += 1


LIBC = None


def syncfs(fd):
    global LIBC
    if LIBC is None:
        import ctypes
        LIBC = ctypes.CDLL(None, use_errno=True)
    if LIBC.syncfs(fd) != 0:
        raise OSError("syncfs failed")


class GroupCommit:
    """Group commit: one `sync()` per round covers every write finished
    before the round began; a writer returns only after a round that began
    after its own write."""

    def __init__(self, sync):
        self.sync = sync
        self.cond = threading.Condition()
        self.waiting = 0
        self.started = 0  # sync rounds begun
        self.finished = 0  # sync rounds completed
        threading.Thread(target=self.sync_rounds, daemon=True).start()

    def wait_durable(self):
        with self.cond:
            # The next round to begin starts after this writer's write.
            ticket = self.started + 1
            self.waiting += 1
            self.cond.notify_all()
            while self.finished < ticket:
                self.cond.wait()

    def sync_rounds(self):
        while True:
            with self.cond:
                while self.waiting == 0:
                    self.cond.wait()
                self.waiting = 0
                self.started += 1
                round_ = self.started
            self.sync()
            with self.cond:
                self.finished = round_
                self.cond.notify_all()


def sync_group(path):
    """One node's chunk files: a round is one syncfs of its file system."""
    dirfd = os.open(path, os.O_RDONLY)
    return GroupCommit(lambda: syncfs(dirfd))


def grouped_files(root, groups, stop, count, writer, payload):
    i = 0
    while time.time() < stop:
        n = (writer * 7919 + i * 104729) % NODES
        d = f"{root}/n{n}/{(writer + i) % 16:02x}"
        temp = f"{d}/.tmp-{writer}-{i}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.pwrite(fd, payload, 0)
        if TWO_ROUNDS:
            groups[n].wait_durable()
        os.rename(temp, f"{d}/c-{writer}-{i}")
        groups[n].wait_durable()
        if DROP:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        i += 1
        count[writer] += 1


TWO_ROUNDS = os.environ.get("TWO_ROUNDS", "0") == "1"


class Log(GroupCommit):
    """One node's append-only log: a round is one fdatasync of it."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.end = 0
        super().__init__(lambda: os.fdatasync(self.fd))

    def reserve(self):
        with self.cond:
            at = self.end
            self.end += RECORD
            return at


def log_appends(logs, stop, count, writer, payload):
    i = 0
    while time.time() < stop:
        log = logs[(writer * 7919 + i * 104729) % NODES]
        os.pwrite(log.fd, payload, log.reserve())
        log.wait_durable()
        i += 1
        count[writer] += 1


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "files"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 12
    writers = int(sys.argv[3]) if len(sys.argv) > 3 else 48
    own = len(sys.argv) <= 4
    root = tempfile.mkdtemp(prefix="disk-ceiling-") if own else sys.argv[4]
    payload = os.urandom(SIZE)
    count = [0] * writers
    groups = None
    if mode in ("files", "grouped"):
        for n in range(NODES):
            for f in range(16):
                os.makedirs(f"{root}/n{n}/{f:02x}", exist_ok=True)
        logs = None
        if mode == "grouped":
            groups = [sync_group(f"{root}/n{n}") for n in range(NODES)]
    elif mode == "log":
        os.makedirs(root, exist_ok=True)
        logs = [Log(f"{root}/log{n}") for n in range(NODES)]
    else:
        sys.exit(f"unknown mode {mode!r}: files, grouped or log")
    stop = time.time() + seconds
    threads = []
    for w in range(writers):
        if groups is not None:
            args = (root, groups, stop, count, w, payload)
            threads.append(threading.Thread(target=grouped_files, args=args))
        elif logs is None:
            args = (root, stop, count, w, payload)
            threads.append(threading.Thread(target=chunk_files, args=args))
        else:
            args = (logs, stop, count, w, payload)
            threads.append(threading.Thread(target=log_appends, args=args))
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = sum(count) / (time.time() - began)
    dropped = f" drop={int(DROP)}" if mode in ("files", "grouped") else ""
    print(f"{mode} writers={writers}{dropped}: {rate:.0f} MiB/s "
          f"({rate / 3:.0f} PUT/s at 3 copies)")
    if own:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
