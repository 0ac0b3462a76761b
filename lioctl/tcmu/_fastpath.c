/* The TCMU handler's native path for READs and WRITEs on a file or block device.
 *
 * Why: under emulation every Python step of the per-command path costs tens of
 * microseconds, and a queue-depth-1 job pays them all (the guest's hot path: ~220 us of
 * Python per 4 KiB read against tcmu-runner's C). This walks the command ring from the
 * handler's position, and for each READ(10/12/16) or WRITE(10/12/16) that is unremarkable
 * -- in range, data length matching -- does the I/O straight between the file and the data
 * area (a small read from the page cache, RWF_NOWAIT, or a write-back write), writes GOOD
 * into the tail slot and goes on; a large read, and what waits for the medium, it hands to
 * its threads (the lanes below), which answer the same way. At the first entry it does not
 * take (any other opcode, a range or length error, a write to a read-only unit, an inline
 * I/O that fails, anything odd in the ring) it stops and returns, and
 * lioctl/tcmu/device.py's Python path serves that entry and the rest of the batch with its
 * full semantics (senses, threads, unit attentions); a thread's failed I/O goes back to
 * Python the same way (reap).
 *
 * So this file never decides an error: it only answers what Python would answer GOOD,
 * having done the same I/O. tests/unit/test_tcmu_fastpath.py fuzzes the two paths against
 * each other over the simulated ring. The ring layout and rules mirror
 * lioctl/tcmu/ring.py (include/uapi/linux/target_core_user.h).
 *
 * The GIL is released while the ring is walked: nothing here touches a Python object then.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <emmintrin.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define MB_CMDR_OFF 4
#define MB_CMDR_SIZE 8
#define MB_CMD_HEAD 12
#define MB_CMD_TAIL 64
#define MAILBOX_SIZE 128
#define OP_PAD 0
#define OP_CMD 1
#define OP_TMR 2
#define OP_MASK 7u
#define ENTRY_HEAD 64           /* len_op .. iov[0]: what ring.py's take() reads in one go */
#define ENTRY_MIN 112
#define IOV_OFF 48
#define MAX_IOVS 256            /* 1 MiB in 4 KiB data blocks; more goes to Python */
#define BURST_ROUNDS 16         /* walks per serve() while commands keep arriving */

enum { READS_OFF = 0, READS_PLAIN = 1, READS_NOWAIT = 2 };

/* The ring's lock and its doorbell protocol, one per device, shared by Python (Device.lock),
 * the walk and the copy threads: whoever writes answers into the ring holds the lock, then
 * rings the doorbell or leaves it to whoever is ringing it now. The kernel copies a read's
 * data to the initiator inside the doorbell write (1 MiB: milliseconds under emulation), so
 * only one writer waits there and the others go on; one write covers every answer written
 * before it (as tcmu-runner's aio_command_finish does). */
typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    int bell_pending;           /* an answer waits for a doorbell */
    int bell_busy;              /* someone is ringing it */
    long long doorbells;        /* doorbell writes (status: how many answers each covers) */
} RingLock;

static PyTypeObject RingLockType;

static inline void rl_lock(RingLock *l) { pthread_mutex_lock(&l->mu); }
static inline void rl_unlock(RingLock *l) { pthread_mutex_unlock(&l->mu); }

/* Under the lock, after writing answers: whether the caller rings the doorbell. */
static int rl_claim(RingLock *l)
{
    l->bell_pending = 1;
    if (l->bell_busy)
        return 0;
    l->bell_busy = 1;
    return 1;
}

/* Without the lock, after rl_claim said so: ring until no answer is left waiting. -1 with
 * errno when the write failed. */
static int rl_ring(RingLock *l, int fd)
{
    static const uint32_t zero = 0;
    for (;;) {
        rl_lock(l);
        l->bell_pending = 0;
        l->doorbells++;
        rl_unlock(l);
        if (write(fd, &zero, 4) < 0) {
            int e = errno;
            rl_lock(l);
            l->bell_busy = 0;
            rl_unlock(l);
            errno = e;
            return -1;
        }
        rl_lock(l);
        if (!l->bell_pending) {
            l->bell_busy = 0;
            rl_unlock(l);
            return 0;
        }
        rl_unlock(l);
    }
}

/* A command handed to a thread: what its I/O needs, and what Python needs to serve it itself
 * when the I/O would wait, comes short or fails (its CDB and iovecs as data-area offsets). */
typedef struct Job {
    struct Job *next;
    uint16_t cmd_id;
    uint8_t is_write, sync, nowait, cdb_len;
    uint8_t cdb[16];
    off_t pos;
    uint64_t total;
    int iov_cnt;
    struct iovec iov[];
} Job;

/* Two lanes of threads per device, started as work comes (up to `max` each):
 * - copy: reads over max_read from the page cache (RWF_NOWAIT) and write-back writes over
 *   max_write into it, a few threads, since they only copy (as many as the CPUs can use;
 *   more only take turns). Writes when the kernel completes commands on the CPU that rang
 *   the doorbell (cmd_completion_affinity -2; Device.follow_completion sets max_write):
 *   copied inline, a large write holds the ring thread for its copy, and 1 MiB writes swing
 *   between 171 and 406 MiB/s from round to round; with the kernel's default the hand-off
 *   costs more than it gains (README, #15);
 * - wait: what waits for the medium (reads the page cache does not hold, every read and
 *   write with O_DIRECT, writes that must be durable: FUA or the write cache off), many
 *   threads, so a disk gets as many commands at once as the initiator sends. */
enum { LANE_COPY = 0, LANE_WAIT = 1, LANES = 2 };
#define LANE_MAX_THREADS 64

typedef struct {
    Job *head, *last;
    pthread_cond_t cv;
    int queued;                 /* jobs on it that no thread has taken yet */
    int idle, nthreads, max;
    pthread_t tid[LANE_MAX_THREADS];
} Lane;

/* The wait lane on io_uring (where the kernel has it): the walk queues what waits for the
 * medium as submissions, one io_uring_enter per walk, and one reaper thread per device
 * answers a batch of completions under one lock with one doorbell. A thread per command in
 * flight (the lane's threads) costs a wake-up to hand each command over and another when its
 * I/O ends; here a batch costs one. Without io_uring (ENOSYS, EPERM under a seccomp policy or
 * kernel.io_uring_disabled) the wait lane keeps its threads. */
typedef struct {
    int fd;                     /* -1: the lane's threads do the waiting */
    int stop_fd;                /* an eventfd polled through the ring: bumped to stop the reaper */
    int running;
    unsigned entries;
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len;
    struct io_uring_sqe *sqes;
    size_t sqes_len;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    unsigned sq_local;          /* our tail (under mu): prepared up to here */
    long inflight;              /* submissions not yet reaped, under mu */
    long long submits;          /* io_uring_enter calls that submitted */
    pthread_t tid;
} Uring;

#define URING_ENTRIES 256
#define URING_STOP 1            /* the stop poll's user_data (a Job pointer is never 1) */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int have_view;
    uint8_t *map;
    uint64_t map_len, cmdr_off, cmdr_size, data_off;
    int fd;                     /* the backend's buffered descriptor */
    int dfd;                    /* the one the wait lane uses (O_DIRECT with `direct`) */
    int doorbell_fd;
    RingLock *lock;
    int done_fd;                /* an eventfd: a thread handed a command back (-1: none) */
    pthread_mutex_t mu;         /* the lanes and the list below */
    pthread_mutex_t write_mu;   /* one copy-lane write at a time: buffered writes to one file
                                 * take its inode lock, and a second writer spins on it in the
                                 * kernel (xfs, 1 MiB writes with 2 copy threads: 98-161 MiB/s
                                 * against 259-272 for tcmu-runner) where here it sleeps */
    pthread_cond_t idle_cv;
    Lane lanes[LANES];
    Job *failed, *failed_last;
    long running;               /* queued or being done */
    long in_flight;             /* taken here and not yet answered nor reaped */
    int stopping, started;
    /* set from Python (Device._fast_config) whenever what they mirror may have changed */
    int enabled;                /* no unit attention pending, the device not failed */
    int reads;                  /* READS_OFF, READS_PLAIN (memory), READS_NOWAIT (may wait) */
    int writes;                 /* write-back WRITEs inline: writable, buffered */
    int writable;               /* not read-only: any WRITE may go to the wait lane */
    int write_back;             /* the write cache is on: a WRITE without FUA needs no sync */
    long long max_read;         /* larger reads go to the copy lane */
    long long max_write;        /* and larger write-back writes */
    int bell_yield;             /* the kernel completes on the doorbell's CPU (cmd_completion_affinity
                                 * -2): after ringing, let its completion work have the CPU now,
                                 * not after the next copy (guest, 1 MiB writes at QD8, 2 rounds
                                 * each on xfs, ext4, tmpfs: every round 1-12% faster) */
    long long num_blocks;
    int block_size;
    /* counters, added to the device's own in its status */
    long long commands, read_count, write_count, read_bytes, write_bytes, copied, waited;
    long long bursts;           /* walks after a doorbell that found more to serve */
    long long walks;            /* walks that served something (answered or queued) */
    long long spin_ns;
    long long spins, spin_hits;  /* waits after a doorbell, and those that caught a command */
    /* The ring thread (tcmu-runner's per-device command thread): it waits for the kernel's
     * notifications on the UIO descriptor and walks, so a plain READ or WRITE never wakes
     * the Python loop. At an entry for Python it hands the ring over (py_owns) and wakes the
     * loop through done_fd; the loop serves and hands it back (resume). Whoever owns the
     * ring is the only one who walks it: COMPARE AND WRITE, unit attentions and
     * reconfiguration happen while Python owns it. */
    pthread_mutex_t walk_mu;    /* held by the ring thread while it walks */
    pthread_t ring_tid;
    int ring_running, ring_stop, py_owns;
    int event_fd, event_size;   /* polled for the kernel's notifications (UIO: 4-byte reads) */
    int kick_fd;                /* an eventfd: Python handed the ring back, or stop */
    uint32_t next;              /* the ring thread's position (Ring.next while it owns) */
    long long handovers;        /* times the ring thread gave the ring to Python */
    long long ring_walks;       /* wake-ups of the ring thread that walked */
    Uring uring;
    int uring_errno;            /* why start() asked for io_uring and the lane kept its threads */
    /* the backing file mapped read-only, by the copy lane's first read: page-cache hits are
     * copied from here */
    const uint8_t *fmap;
    uint64_t fmap_len;
    int map_state;              /* MAP_UNTRIED, MAP_ON, MAP_OFF (no mapping: preadv2 only) */
    int map_check;              /* mincore before a copy (tests turn it off to reach SIGBUS) */
    long long mapped;           /* copy-lane reads served from the mapping */
    long long mapped_writes;    /* write-back writes copied into it */
    long long copied_writes;    /* write-back writes the copy lane did (max_write) */
    long long map_write_min;
    int fmap_writable;
} FastPath;

static inline uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }

/* The kernel writes cmd_head; we write cmd_tail: ordered against the entries they cover. */
static inline uint32_t load_head(const uint8_t *map)
{
    return __atomic_load_n((const uint32_t *)(map + MB_CMD_HEAD), __ATOMIC_ACQUIRE);
}

static inline void store_tail(uint8_t *map, uint32_t tail)
{
    __atomic_store_n((uint32_t *)(map + MB_CMD_TAIL), tail, __ATOMIC_RELEASE);
}

static inline uint32_t load_tail(const uint8_t *map)
{
    return __atomic_load_n((const uint32_t *)(map + MB_CMD_TAIL), __ATOMIC_RELAXED);
}

#define ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)

/* the walk and the threads count at the same time */
static inline void count(FastPath *self, int is_write, uint64_t total)
{
    ADD(self->commands, 1);
    if (is_write) {
        ADD(self->write_count, 1);
        ADD(self->write_bytes, (long long)total);
    } else {
        ADD(self->read_count, 1);
        ADD(self->read_bytes, (long long)total);
    }
}

/* The opcode's (is_write, lba, blocks) for the READs and WRITEs served here; 0 for others. */
static int rw_extent(const uint8_t *cdb, int *is_write, uint64_t *lba, uint64_t *blocks, int *cdb_len)
{
    switch (cdb[0]) {
    case 0x28: case 0x2A:       /* READ(10), WRITE(10) */
        *lba = be32(cdb + 2); *blocks = be16(cdb + 7); *cdb_len = 10; break;
    case 0xA8: case 0xAA:       /* READ(12), WRITE(12) */
        *lba = be32(cdb + 2); *blocks = be32(cdb + 6); *cdb_len = 12; break;
    case 0x88: case 0x8A:       /* READ(16), WRITE(16) */
        *lba = be64(cdb + 2); *blocks = be32(cdb + 10); *cdb_len = 16; break;
    default:
        return 0;
    }
    *is_write = cdb[0] == 0x2A || cdb[0] == 0xAA || cdb[0] == 0x8A;
    return 1;
}

/* Where the answer to the next command goes (ring.py's complete()): the first slot from
 * cmd_tail on that is not PAD/TMR, and the tail after it with trailing PAD/TMR stepped
 * over, both within the `left` bytes taken. 0 when the ring is not as it should be. */
static int answer_slot(FastPath *self, uint32_t tail, uint32_t left, uint32_t *slot, uint32_t *new_tail)
{
    const uint8_t *ring = self->map + self->cmdr_off;
    uint32_t size = (uint32_t)self->cmdr_size;
    if (tail >= size || (tail & 7))
        return 0;
    for (;;) {
        uint32_t len_op = get_u32(ring + tail);
        uint32_t length = len_op & ~OP_MASK, op = len_op & OP_MASK;
        if (length == 0 || length > left)
            return 0;
        if (op != OP_PAD && op != OP_TMR) {
            if (length < 16)
                return 0;
            *slot = tail;
            left -= length;
            tail = (tail + length) % size;
            break;
        }
        left -= length;
        tail = (tail + length) % size;
    }
    while (left) {
        uint32_t len_op = get_u32(ring + tail);
        uint32_t length = len_op & ~OP_MASK, op = len_op & OP_MASK;
        if (op != OP_PAD && op != OP_TMR)
            break;
        if (length == 0 || length > left)
            return 0;
        left -= length;
        tail = (tail + length) % size;
    }
    *new_tail = tail;
    return 1;
}

/* Under the ring lock: GOOD for cmd_id at the tail slot, `left` bytes of taken entries from
 * the tail on; 0 (nothing written) when the ring cannot take it. */
static int answer_good(FastPath *self, uint16_t cmd_id, uint32_t left_to)
{
    uint8_t *map = self->map;
    const uint32_t size = (uint32_t)self->cmdr_size;
    uint32_t tail = load_tail(map), slot, new_tail;
    if (!answer_slot(self, tail, (left_to - tail + size) % size, &slot, &new_tail))
        return 0;
    /* cmd_id, kflags kept, uflags 0, status 0, read_len 0 */
    uint8_t *s = map + self->cmdr_off + slot;
    memcpy(s + 4, &cmd_id, 2);
    s[7] = 0;
    memset(s + 8, 0, 8);
    store_tail(map, new_tail);
    return 1;
}

static int enqueue(FastPath *self, int lane, uint16_t cmd_id, const uint8_t *cdb, int cdb_len, int is_write,
                   int sync, off_t pos, uint64_t total, const struct iovec *iov, uint32_t n);
static void uring_flush(Uring *u);

/* One walk from *next to cmd_head, serving; returns how many commands were answered. *next
 * follows ring.py's Ring.next; Ring.pending does not change (every command taken here is
 * answered here or by a thread, or handed back by reap, when Python counts it). */
static ssize_t write_back(FastPath *self, const struct iovec *iov, int n, off_t pos, uint64_t total,
                          pthread_mutex_t *serial);

static long walk(FastPath *self, uint32_t *next, int *rest, long *queued, int locked)
{
    uint8_t *map = self->map;
    const uint64_t map_len = self->map_len, data_off = self->data_off, base = self->cmdr_off;
    const uint32_t size = (uint32_t)self->cmdr_size;
    uint32_t head = load_head(map), nxt = *next;
    long answered = 0, queued_before = *queued;
    struct iovec iov[MAX_IOVS];

    *rest = head != nxt;
    if (head == nxt || head >= size || (head & 7) || nxt >= size)
        return 0;
    uint32_t left = (head - nxt + size) % size;
    while (left) {
        uint64_t off = base + nxt;
        if (off + ENTRY_HEAD > map_len)
            break;
        const uint8_t *e = map + off;
        uint32_t len_op = get_u32(e), length = len_op & ~OP_MASK, op = len_op & OP_MASK;
        if (length == 0 || length > left || length > size - nxt)
            break;
        if (op == OP_PAD || op == OP_TMR) {
            left -= length;
            nxt = (nxt + length) % size;
            continue;
        }
        if (op != OP_CMD || !self->enabled || length < ENTRY_MIN)
            break;
        uint16_t cmd_id;
        memcpy(&cmd_id, e + 4, 2);
        uint32_t iov_cnt = get_u32(e + 8);
        uint64_t cdb_off = get_u64(e + 24);
        if (iov_cnt == 0 || iov_cnt > MAX_IOVS || IOV_OFF + 16 * (uint64_t)iov_cnt > length)
            break;
        if (cdb_off >= map_len || map_len - cdb_off < 16)
            break;
        const uint8_t *cdb = map + cdb_off;
        int is_write, cdb_len;
        uint64_t lba, blocks;
        if (!rw_extent(cdb, &is_write, &lba, &blocks, &cdb_len))
            break;
        uint64_t nb = (uint64_t)self->num_blocks;
        if (blocks == 0 || blocks > nb || lba > nb - blocks)
            break;
        uint64_t want = blocks * (uint64_t)self->block_size, total = 0;
        int bad = 0;
        for (uint32_t i = 0; i < iov_cnt; i++) {
            uint64_t b = get_u64(e + IOV_OFF + 16 * i), n = get_u64(e + IOV_OFF + 16 * i + 8);
            if (b < data_off || b > map_len || n > map_len - b) {
                bad = 1;
                break;
            }
            iov[i].iov_base = map + b;
            iov[i].iov_len = n;
            total += n;
        }
        if (bad || total != want)
            break;
        uint32_t after = (nxt + length) % size, slot, new_tail;
        off_t pos = (off_t)(lba * (uint64_t)self->block_size);
        /* inline (-1), or a lane whose thread answers and rings itself: a large read (so the
         * kernel's copy in its doorbell overlaps the next read), or what waits */
        int lane = -1, sync = 0;
        if (is_write) {
            if (!self->writable)
                break;                      /* DATA PROTECT is Python's to say */
            sync = (cdb[1] & 0x08) || !self->write_back;
            if (sync || !self->writes)
                lane = LANE_WAIT;
            else if (total > (uint64_t)self->max_write)
                lane = LANE_COPY;
        } else if (self->reads == READS_OFF) {
            lane = LANE_WAIT;
        } else if (total > (uint64_t)self->max_read) {
            lane = LANE_COPY;
        }
        if (lane >= 0) {
            if (!enqueue(self, lane, cmd_id, cdb, cdb_len, is_write, sync, pos, total, iov, iov_cnt))
                break;
            nxt = after;
            left -= length;
            (*queued)++;
            continue;
        }
        /* the answer's slot, checked before any I/O: a ring that cannot take the answer is
         * Python's to fail, with nothing done (checked again under the lock after it: a copy
         * thread may have answered meanwhile) */
        uint32_t tail = load_tail(map);
        if (!answer_slot(self, tail, (after - tail + size) % size, &slot, &new_tail))
            break;
        ssize_t got;
        if (is_write) {
            got = write_back(self, iov, (int)iov_cnt, pos, total, NULL);
        } else {
            got = preadv2(self->fd, iov, (int)iov_cnt, pos, self->reads == READS_NOWAIT ? RWF_NOWAIT : 0);
            if (got < 0 && (errno == EOPNOTSUPP || errno == EINVAL) && self->reads == READS_NOWAIT)
                self->reads = READS_OFF;    /* no RWF_NOWAIT here: Python finds out too */
        }
        if (got < 0 || (uint64_t)got != total) {
            /* a read that would wait (or that the page cache holds only part of): the wait
             * lane; failed or short otherwise: Python's to answer */
            if (is_write || !(self->reads == READS_NOWAIT && (got >= 0 || errno == EAGAIN)) ||
                !enqueue(self, LANE_WAIT, cmd_id, cdb, cdb_len, 0, 0, pos, total, iov, iov_cnt))
                break;
            nxt = after;
            left -= length;
            (*queued)++;
            continue;
        }
        if (!locked)
            rl_lock(self->lock);
        int ok = answer_good(self, cmd_id, after);
        if (!locked)
            rl_unlock(self->lock);
        if (!ok)
            break;                          /* Python does it again and fails the ring */
        nxt = after;
        left -= length;
        answered++;
        count(self, is_write, total);
    }
    if (answered || *queued != queued_before)
        ADD(self->walks, 1);
    if (*queued != queued_before && self->uring.running) {
        pthread_mutex_lock(&self->mu);
        uring_flush(&self->uring);
        pthread_mutex_unlock(&self->mu);
    }
    *next = nxt;
    *rest = left != 0;
    return answered;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Whether cmd_head moves past `next` within ns. */
static int head_moves_within(FastPath *self, uint32_t next, long long ns)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (load_head(self->map) != next)
                return 1;
            cpu_relax();
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) > ns)
            return 0;
    }
}

/* Up to spin_ns for cmd_head to move past `next`: the initiator's next command is often on
 * its way, and a wake-up through the event loop costs more than serving it (device.py:
 * SPIN_NS, LIOCTL_TCMU_SPIN_US). Counted, with the waits that caught a command: in the TCG
 * guest few do at QD1 (1%), and yet the wait is worth +50% IOPS there, so what it saves is
 * the CPU's going idle and being woken, not the ring's notification (device.py). */
static int spin_for_more(FastPath *self, uint32_t next)
{
    if (self->spin_ns <= 0)
        return 0;
    int hit = head_moves_within(self, next, self->spin_ns);
    self->spins++;              /* counted together at the end: a reader sees them agree */
    self->spin_hits += hit;
    return hit;
}

/* Walk, answer, ring; returns how many commands were answered, or -1 with errno when the
 * doorbell write failed. ring_bell 0: the caller holds the ring lock and rings the doorbell
 * after letting go of it (Python's I/O threads are answering, and the bound of their
 * answers is Ring.next, which must follow this walk before they write again). After the doorbell (where the kernel completes what was answered,
 * and its initiator may queue more) the ring is looked at again: what arrived meanwhile is
 * served now rather than after another wake-up of the Python loop, which under emulation
 * costs more than the commands (4k QD32 in the guest: one wake-up per command or two).
 * Bounded, so the loop's other devices get their turn. */
static long serve_ring(FastPath *self, uint32_t *next, int *rest, long *queued, int ring_bell)
{
    long total = 0;
    for (int round = 1;; round++) {
        long answered = walk(self, next, rest, queued, !ring_bell);
        total += answered;
        if (!answered || !ring_bell)
            break;
        rl_lock(self->lock);
        int mine = rl_claim(self->lock);
        rl_unlock(self->lock);
        if (mine && rl_ring(self->lock, self->doorbell_fd) < 0)
            return -1;
        if (mine && self->bell_yield)
            sched_yield();
        if (*rest || round >= BURST_ROUNDS)
            break;
        if (load_head(self->map) == *next && !spin_for_more(self, *next))
            break;
        self->bursts++;
    }
    return total;
}

static PyObject *FastPath_serve(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "serve(next, ring_bell)");
        return NULL;
    }
    if (!self->have_view) {
        PyErr_SetString(PyExc_ValueError, "serve() on a closed fast path");
        return NULL;
    }
    unsigned long nx = PyLong_AsUnsignedLong(args[0]);
    int ring_bell = PyObject_IsTrue(args[1]);
    if (PyErr_Occurred() || ring_bell < 0)
        return NULL;
    uint32_t next = (uint32_t)nx, before = next;
    long answered, queued = 0;
    int err = 0, rest = 1;
    Py_BEGIN_ALLOW_THREADS
    answered = serve_ring(self, &next, &rest, &queued, ring_bell);
    if (answered < 0)
        err = errno;
    Py_END_ALLOW_THREADS
    if (answered < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (answered == 0 && queued == 0 && next == before)
        Py_RETURN_NONE;
    return Py_BuildValue("(klO)", (unsigned long)next, answered + queued, rest ? Py_True : Py_False);
}

/* Threads */

static void *copy_main(void *arg);
static void *wait_main(void *arg);

/* Under mu: one more thread for `lane` when its idle threads are fewer than the jobs waiting
 * for one (a thread signalled counts as idle until it wakes: a burst of commands must not
 * all wait for the same few) and it may have more. */
static void grow(FastPath *self, int lane)
{
    Lane *L = &self->lanes[lane];
    if (L->queued <= L->idle || L->nthreads >= L->max)
        return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    if (pthread_create(&L->tid[L->nthreads], &attr, lane == LANE_COPY ? copy_main : wait_main, self) == 0)
        L->nthreads++;
    pthread_attr_destroy(&attr);
}

/* io_uring by its system calls (no liburing: one header, three calls) */

static int sys_uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_uring_enter(int fd, unsigned submit, unsigned min_complete, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, min_complete, flags, NULL, 0);
}

static void uring_free(Uring *u)
{
    if (u->sqes != NULL && u->sqes != MAP_FAILED)
        munmap(u->sqes, u->sqes_len);
    if (u->cq_map != NULL && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map)
        munmap(u->cq_map, u->cq_map_len);
    if (u->sq_map != NULL && u->sq_map != MAP_FAILED)
        munmap(u->sq_map, u->sq_map_len);
    if (u->fd >= 0)
        close(u->fd);
    if (u->stop_fd >= 0)
        close(u->stop_fd);
    memset(u, 0, sizeof *u);
    u->fd = u->stop_fd = -1;
}

/* Under mu: the submissions prepared and not yet taken by the kernel (without SQPOLL it takes
 * them inside io_uring_enter, which moves sq_head). */
static unsigned uring_pending(Uring *u)
{
    return u->sq_local - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
}

/* Under mu: hand the prepared submissions to the kernel. An error leaves them prepared: the
 * reaper's next io_uring_enter submits them. */
static void uring_flush(Uring *u)
{
    unsigned n = uring_pending(u);
    if (n && sys_uring_enter(u->fd, n, 0, 0) > 0)
        u->submits++;
}

/* Under mu: a submission at the SQ's tail, not yet handed to the kernel; 0 when the SQ is
 * full even after a flush. */
static struct io_uring_sqe *uring_sqe(Uring *u)
{
    if (uring_pending(u) >= u->entries) {
        uring_flush(u);
        if (uring_pending(u) >= u->entries)
            return NULL;
    }
    unsigned idx = u->sq_local & *u->sq_mask;
    struct io_uring_sqe *sqe = &u->sqes[idx];
    memset(sqe, 0, sizeof *sqe);
    u->sq_array[idx] = idx;
    return sqe;
}

static void uring_commit(Uring *u)
{
    u->sq_local++;
    __atomic_store_n(u->sq_tail, u->sq_local, __ATOMIC_RELEASE);
}

/* Set up the ring, and its first submission: a poll of stop_fd, whose completion ends the
 * reaper. 0, or -1 with errno (then nothing is left set up). */
static int uring_setup(Uring *u)
{
    struct io_uring_params p;
    memset(u, 0, sizeof *u);
    u->fd = u->stop_fd = -1;
    memset(&p, 0, sizeof p);
    int fd = sys_uring_setup(URING_ENTRIES, &p);
    if (fd < 0)
        return -1;
    u->fd = fd;
    u->entries = p.sq_entries;
    u->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    u->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (u->cq_map_len > u->sq_map_len)
            u->sq_map_len = u->cq_map_len;
        u->cq_map_len = u->sq_map_len;
    }
    u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (u->sq_map == MAP_FAILED)
        goto fail;
    if (p.features & IORING_FEAT_SINGLE_MMAP)
        u->cq_map = u->sq_map;
    else if ((u->cq_map = mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                               IORING_OFF_CQ_RING)) == MAP_FAILED)
        goto fail;
    u->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED)
        goto fail;
    uint8_t *sq = u->sq_map, *cq = u->cq_map;
    u->sq_head = (unsigned *)(sq + p.sq_off.head);
    u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(sq + p.sq_off.array);
    u->cq_head = (unsigned *)(cq + p.cq_off.head);
    u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    u->sq_local = *u->sq_tail;
    if ((u->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
        goto fail;
    struct io_uring_sqe *sqe = uring_sqe(u);
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = u->stop_fd;
    sqe->poll_events = POLLIN;
    sqe->user_data = URING_STOP;
    uring_commit(u);
    if (sys_uring_enter(u->fd, 1, 0, 0) != 1)
        goto fail;
    return 0;
fail:;
    int e = errno;
    uring_free(u);
    errno = e;
    return -1;
}

/* Under mu: the job's I/O as a submission (prepared; the walk hands its batch over at its
 * end, anyone else at once). 0 when the SQ has no room. */
static int uring_push(FastPath *self, Job *j, int flush)
{
    Uring *u = &self->uring;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (sqe == NULL)
        return 0;
    sqe->opcode = j->is_write ? IORING_OP_WRITEV : IORING_OP_READV;
    sqe->fd = self->dfd;
    sqe->addr = (uint64_t)(uintptr_t)j->iov;
    sqe->len = (unsigned)j->iov_cnt;
    sqe->off = (uint64_t)j->pos;
    sqe->rw_flags = j->is_write && j->sync ? RWF_DSYNC : 0;
    sqe->user_data = (uint64_t)(uintptr_t)j;
    uring_commit(u);
    u->inflight++;
    if (flush)
        uring_flush(u);
    return 1;
}

/* Under mu: onto `lane`, with a thread to take it; 0 when the lane has none and can get none. */
static int push(FastPath *self, int lane, Job *j, int flush)
{
    Lane *L = &self->lanes[lane];
    if (self->stopping)
        return 0;
    if (lane == LANE_WAIT && self->uring.running)
        return uring_push(self, j, flush);
    L->queued++;
    grow(self, lane);
    if (L->nthreads == 0) {
        L->queued--;
        return 0;
    }
    j->next = NULL;
    if (L->last)
        L->last->next = j;
    else
        L->head = j;
    L->last = j;
    pthread_cond_signal(&L->cv);
    return 1;
}

static int enqueue(FastPath *self, int lane, uint16_t cmd_id, const uint8_t *cdb, int cdb_len, int is_write,
                   int sync, off_t pos, uint64_t total, const struct iovec *iov, uint32_t n)
{
    if (!self->started || self->lanes[lane].max == 0 || self->done_fd < 0)
        return 0;
    Job *j = malloc(sizeof(Job) + n * sizeof(struct iovec));
    if (j == NULL)
        return 0;
    j->cmd_id = cmd_id;
    j->is_write = (uint8_t)is_write;
    j->sync = (uint8_t)sync;
    j->nowait = !is_write && lane == LANE_COPY && self->reads == READS_NOWAIT;
    memset(j->cdb, 0, sizeof j->cdb);
    memcpy(j->cdb, cdb, (size_t)cdb_len);
    j->cdb_len = (uint8_t)cdb_len;
    j->pos = pos;
    j->total = total;
    j->iov_cnt = (int)n;
    memcpy(j->iov, iov, n * sizeof(struct iovec));
    pthread_mutex_lock(&self->mu);
    int ok = push(self, lane, j, 0);       /* the walk hands its submissions over at its end */
    if (ok) {
        self->running++;
        __atomic_fetch_add(&self->in_flight, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&self->mu);
    if (!ok)
        free(j);
    return ok;
}

/* Copy-lane reads from a read-only shared mapping of the backing file. Why: a large read
 * from the page cache through preadv2 pays the kernel's copy routine and a page-cache lookup
 * per page; from the mapping it is one residency check (mincore) and a copy in user space.
 * Under the guest's emulation a 1 MiB read costs about 2.5x through pread what mincore plus
 * a 16-byte-wide copy in user space costs (bench/copy_cost.py: 2.0 ms against 0.8), on the
 * thread that competes with the initiator for the CPUs. A page that is not resident, a range
 * past the mapping, or a SIGBUS (the file shrank under us, or a page gone between the check
 * and the copy failed to read back) falls back to preadv2, which decides as before. */
#define MAP_MAX_PAGES 1024

static __thread sigjmp_buf *tl_bus_jmp;
static struct sigaction prev_bus;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    sigjmp_buf *jb = tl_bus_jmp;
    (void)uc;
    if (jb != NULL && si->si_code > 0)
        siglongjmp(*jb, 1);
    /* not a copy of ours: whoever had SIGBUS before gets it (a fault repeats on return) */
    sigaction(SIGBUS, &prev_bus, NULL);
    if (si->si_code <= 0)
        raise(sig);
}

static void install_sigbus(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;  /* left by siglongjmp with the mask as it was */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &prev_bus);
}

/* 16 bytes at a time: the emulator runs these as plain loads and stores, where the string
 * instructions glibc's memcpy picks for large sizes run a byte or a word per step */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void copy_wide(uint8_t *dst, const uint8_t *src, size_t n)
{
    while (n >= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)src), b = _mm_loadu_si128((const __m128i *)(src + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + 32)), d = _mm_loadu_si128((const __m128i *)(src + 48));
        _mm_storeu_si128((__m128i *)dst, a);
        _mm_storeu_si128((__m128i *)(dst + 16), b);
        _mm_storeu_si128((__m128i *)(dst + 32), c);
        _mm_storeu_si128((__m128i *)(dst + 48), d);
        src += 64, dst += 64, n -= 64;
    }
    while (n-- > 0)
        *dst++ = *src++;
}

enum { MAP_UNTRIED = 0, MAP_ON = 1, MAP_OFF = 2 };

/* Under mu, once: a regular file's or a block device's whole length as it is now (a file
 * grown later is read past the mapping by preadv2). LIOCTL_TCMU_MAP_READS=0 leaves it out;
 * it is writable when the descriptor is (LIOCTL_TCMU_MAP_WRITES=0: read-only). */
static void map_file(FastPath *self)
{
    struct stat st;
    uint64_t len = 0;
    const char *env = getenv("LIOCTL_TCMU_MAP_READS"), *wenv = getenv("LIOCTL_TCMU_MAP_WRITES");
    void *m = MAP_FAILED;
    int flags = fcntl(self->fd, F_GETFL);
    int writable = flags >= 0 && (flags & O_ACCMODE) == O_RDWR && (wenv == NULL || strcmp(wenv, "0") != 0);
    if ((env == NULL || strcmp(env, "0") != 0) && fstat(self->fd, &st) == 0) {
        if (S_ISREG(st.st_mode))
            len = (uint64_t)st.st_size;
        else if (!S_ISBLK(st.st_mode) || ioctl(self->fd, BLKGETSIZE64, &len) < 0)
            len = 0;
        if (len > 0 && len <= (uint64_t)SIZE_MAX)
            m = mmap(NULL, (size_t)len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, self->fd, 0);
    }
    if (m != MAP_FAILED) {
        pthread_once(&bus_once, install_sigbus);
        self->fmap = m;
        self->fmap_len = len;
        self->fmap_writable = writable;
    }
    __atomic_store_n(&self->map_state, m != MAP_FAILED ? MAP_ON : MAP_OFF, __ATOMIC_RELEASE);
}

static void unmap_file(FastPath *self)
{
    if (self->fmap != NULL)
        munmap((void *)self->fmap, (size_t)self->fmap_len);
    self->fmap = NULL;
    self->fmap_len = 0;
    self->fmap_writable = 0;
    self->map_state = MAP_UNTRIED;
}

/* what of `total` did not fit the iovecs (0: all copied); to_file: from them into `at` */
static __attribute__((noinline)) uint64_t copy_iovs(const struct iovec *iov, int n, uint8_t *at,
                                                    uint64_t total, int to_file)
{
    for (int i = 0; i < n && total > 0; i++) {
        size_t len = iov[i].iov_len < total ? iov[i].iov_len : (size_t)total;
        if (to_file)
            copy_wide(at, iov[i].iov_base, len);
        else
            copy_wide(iov[i].iov_base, at, len);
        at += len;
        total -= len;
    }
    return total;
}

/* 1 when the whole transfer went between the mapping and the iovecs; 0: preadv2 or
 * pwritev2 decides. Only over resident pages: a write to one that is not would read it from
 * the medium first (a fault), where pwritev2 of whole pages does not; a read would wait for
 * the medium on a thread that only copies. A write makes the pages dirty as pwritev2 does
 * (the fault of a page's first store marks it), so SYNCHRONIZE CACHE's fdatasync writes it
 * back; one that cannot be backed (ENOSPC in a sparse file, EIO) is a SIGBUS here, and
 * pwritev2 then writes all of it again and says why. */
static int map_copy(FastPath *self, const struct iovec *iov, int n, off_t at, uint64_t total, int to_file)
{
    static long page;
    if (page == 0)
        page = sysconf(_SC_PAGESIZE);
    int state = __atomic_load_n(&self->map_state, __ATOMIC_ACQUIRE);
    if (state == MAP_UNTRIED) {
        pthread_mutex_lock(&self->mu);
        if (self->map_state == MAP_UNTRIED)
            map_file(self);
        state = self->map_state;
        pthread_mutex_unlock(&self->mu);
    }
    uint64_t pos = (uint64_t)at;
    if (state != MAP_ON || (to_file && !self->fmap_writable) || total == 0 || pos > self->fmap_len ||
            total > self->fmap_len - pos)
        return 0;
    uint8_t *p = (uint8_t *)self->fmap + pos;
    uintptr_t first = (uintptr_t)p & ~((uintptr_t)page - 1);
    size_t span = (uintptr_t)p + total - first, pages = (span + (size_t)page - 1) / (size_t)page;
    unsigned char vec[MAP_MAX_PAGES];
    if (pages > MAP_MAX_PAGES)
        return 0;
    if (self->map_check) {
        if (mincore((void *)first, span, vec) < 0)
            return 0;
        for (size_t i = 0; i < pages; i++)
            if (!(vec[i] & 1))
                return 0;
    }
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0)) {
        tl_bus_jmp = NULL;
        return 0;
    }
    tl_bus_jmp = &jb;
    uint64_t left = copy_iovs(iov, n, p, total, to_file);
    tl_bus_jmp = NULL;
    if (left != 0)
        return 0;
    if (to_file)
        ADD(self->mapped_writes, 1);
    else
        ADD(self->mapped, 1);
    return 1;
}

/* A write-back WRITE of map_write_min bytes or more (128 KiB; smaller ones cost about the
 * same through pwritev2: bench/copy_cost.py, reads, 8.7 against 9.2 us at 4 KiB) goes into
 * the mapping: the ring thread copies every such write inline, and the kernel's copy routine
 * under emulation takes 2.5 times what the wide copy does. Stores into the mapping take no
 * inode lock; pwritev2 does, so the copy threads pass `serial` (write_mu) to take turns. */
static ssize_t write_back(FastPath *self, const struct iovec *iov, int n, off_t pos, uint64_t total,
                          pthread_mutex_t *serial)
{
    if (total >= (uint64_t)self->map_write_min && map_copy(self, iov, n, pos, total, 1))
        return (ssize_t)total;
    if (serial)
        pthread_mutex_lock(serial);
    ssize_t got = pwritev2(self->fd, iov, n, pos, 0);
    if (serial)
        pthread_mutex_unlock(serial);
    return got;
}

enum { DONE = 0, HAND_BACK = 1, TO_WAIT = 2 };

/* The I/O, then GOOD at the tail under the ring lock, then the doorbell (tcmu-runner's file
 * handler: an I/O and a doorbell per thread). */
static int run_job(FastPath *self, Job *j, int lane)
{
    const uint32_t size = (uint32_t)self->cmdr_size;
    ssize_t got;
    if (j->is_write && lane == LANE_COPY)       /* write-back: into the page cache */
        got = write_back(self, j->iov, j->iov_cnt, j->pos, j->total, &self->write_mu);
    else if (j->is_write)
        got = pwritev2(self->dfd, j->iov, j->iov_cnt, j->pos, j->sync ? RWF_DSYNC : 0);
    else if (lane == LANE_COPY && map_copy(self, j->iov, j->iov_cnt, j->pos, j->total, 0))
        got = (ssize_t)j->total;
    else
        got = preadv2(lane == LANE_COPY ? self->fd : self->dfd, j->iov, j->iov_cnt, j->pos,
                      j->nowait ? RWF_NOWAIT : 0);
    if (got < 0 || (uint64_t)got != j->total) {
        /* the page cache did not hold it all: wait for the medium; else Python's */
        return j->nowait && (got >= 0 || errno == EAGAIN) ? TO_WAIT : HAND_BACK;
    }
    int answered, mine = 0;
    rl_lock(self->lock);
    /* every entry up to cmd_head that holds an answer was taken: answers never outnumber
     * the commands taken, so the slot is a taken one */
    answered = answer_good(self, j->cmd_id, load_head(self->map) % size);
    if (answered) {
        __atomic_fetch_sub(&self->in_flight, 1, __ATOMIC_RELEASE);
        mine = rl_claim(self->lock);
    }
    rl_unlock(self->lock);
    if (!answered)
        return HAND_BACK;
    count(self, j->is_write, j->total);
    if (lane == LANE_COPY) {
        ADD(self->copied, 1);
        if (j->is_write)
            ADD(self->copied_writes, 1);
    }
    else
        ADD(self->waited, 1);
    free(j);
    if (mine && rl_ring(self->lock, self->doorbell_fd) < 0) {
        /* the device went away: the event loop finds out on its next read */
    }
    if (mine && self->bell_yield)
        sched_yield();
    return DONE;
}

/* Add one to an eventfd (done_fd wakes the loop, kick_fd the ring thread): -1 with errno
 * when the write failed, which a counter of ours does not in practice. */
static int bump(int fd)
{
    static const uint64_t one = 1;
    return write(fd, &one, sizeof one) < 0 ? -1 : 0;
}

/* Under mu: the chain first..last onto the list Python reaps (reap), the wait threads' and
 * the io_uring reaper's alike. */
static void hand_back(FastPath *self, Job *first, Job *last)
{
    if (self->failed_last)
        self->failed_last->next = first;
    else
        self->failed = first;
    self->failed_last = last;
}

/* What would wait, came short or failed goes back to Python through done_fd: its I/O
 * threads wait, its senses answer. */
static void *worker(FastPath *self, int lane)
{
    Lane *L = &self->lanes[lane];
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (L->head == NULL && !self->stopping) {
            L->idle++;
            pthread_cond_wait(&L->cv, &self->mu);
            L->idle--;
        }
        Job *j = L->head;
        if (j == NULL)
            break;                          /* stopping, and nothing left to do */
        L->head = j->next;
        if (L->head == NULL)
            L->last = NULL;
        L->queued--;
        pthread_mutex_unlock(&self->mu);
        int outcome = run_job(self, j, lane);
        pthread_mutex_lock(&self->mu);
        if (outcome == TO_WAIT) {
            j->nowait = 0;
            if (push(self, LANE_WAIT, j, 1))
                continue;                   /* still running, on the other lane */
            outcome = HAND_BACK;
        }
        int signal = 0;
        if (outcome == HAND_BACK) {
            j->next = NULL;
            hand_back(self, j, j);
            signal = 1;
        }
        if (--self->running == 0)
            pthread_cond_broadcast(&self->idle_cv);
        if (signal) {
            pthread_mutex_unlock(&self->mu);
            bump(self->done_fd);            /* the loop reaps anyway on its next wake-up */
            pthread_mutex_lock(&self->mu);
        }
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* The uring lane's reaper: what completed is answered under one lock with one doorbell (the
 * walker may be filling the ring meanwhile); a short or failed I/O goes back to Python as a
 * wait thread's would. Ends when stop_fd is bumped and nothing it submitted is in flight
 * (their buffers are the data area, which must outlive them). */
static void *uring_main(void *arg)
{
    FastPath *self = arg;
    Uring *u = &self->uring;
    const uint32_t size = (uint32_t)self->cmdr_size;
    int stop = 0;
    pthread_setname_np(pthread_self(), "tcmu-uring");
    for (;;) {
        unsigned head = *u->cq_head, tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
        if (head == tail) {
            pthread_mutex_lock(&self->mu);
            int done = stop && u->inflight == 0;
            unsigned pending = uring_pending(u);
            pthread_mutex_unlock(&self->mu);
            if (done)
                break;
            /* also submits what a failed flush left prepared */
            if (sys_uring_enter(u->fd, pending, 1, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR &&
                    errno != EAGAIN && errno != EBUSY && errno != ETIME) {
                /* the ring is unusable: nothing can be reaped, so nothing can be done */
                break;
            }
            continue;
        }
        Job *back = NULL, *back_last = NULL;
        long reaped = 0;
        int answered = 0, mine = 0;
        rl_lock(self->lock);
        for (; head != tail; head++) {
            struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
            if (c->user_data == URING_STOP) {
                stop = 1;
                continue;
            }
            Job *j = (Job *)(uintptr_t)c->user_data;
            reaped++;
            /* every entry up to cmd_head that holds an answer was taken (run_job) */
            if (c->res >= 0 && (uint64_t)c->res == j->total &&
                    answer_good(self, j->cmd_id, load_head(self->map) % size)) {
                __atomic_fetch_sub(&self->in_flight, 1, __ATOMIC_RELEASE);
                count(self, j->is_write, j->total);
                ADD(self->waited, 1);
                answered = 1;
                free(j);
                continue;
            }
            j->next = NULL;
            if (back_last)
                back_last->next = j;
            else
                back = j;
            back_last = j;
        }
        __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
        if (answered)
            mine = rl_claim(self->lock);
        rl_unlock(self->lock);
        if (mine && rl_ring(self->lock, self->doorbell_fd) < 0) {
            /* the device went away: the event loop finds out on its next read */
        }
        pthread_mutex_lock(&self->mu);
        if (back)
            hand_back(self, back, back_last);
        u->inflight -= reaped;
        self->running -= reaped;
        if (reaped && self->running == 0)
            pthread_cond_broadcast(&self->idle_cv);
        pthread_mutex_unlock(&self->mu);
        if (back)
            bump(self->done_fd);
    }
    return NULL;
}

/* named so that top -H, ps -L and the bench's CPU by thread tell the handler's threads apart */
static void *copy_main(void *arg) { pthread_setname_np(pthread_self(), "tcmu-copy"); return worker(arg, LANE_COPY); }
static void *wait_main(void *arg) { pthread_setname_np(pthread_self(), "tcmu-wait"); return worker(arg, LANE_WAIT); }

/* The ring thread */

static void *ring_main(void *arg)
{
    FastPath *self = arg;
    struct pollfd p[2] = {{self->event_fd, POLLIN, 0}, {self->kick_fd, POLLIN, 0}};
    uint8_t buf[8];
    pthread_setname_np(pthread_self(), "tcmu-ring");
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            p[0].fd = -1;               /* cannot wait for the kernel: Python's to find out */
        }
        if (p[1].revents & POLLIN && read(self->kick_fd, buf, 8) < 0) {
            /* EAGAIN: another wake-up took it */
        }
        int gone = 0;
        if (p[0].fd >= 0 && p[0].revents) {
            /* reading resets UIO's event count (else poll returns at once again); an error
             * (the device removed) goes to Python, whose doorbell write then fails */
            if (read(self->event_fd, buf, (size_t)self->event_size) < 0 && errno != EAGAIN && errno != EINTR) {
                p[0].fd = -1;
                gone = 1;
            }
        }
        pthread_mutex_lock(&self->walk_mu);
        if (self->ring_stop) {
            pthread_mutex_unlock(&self->walk_mu);
            break;
        }
        int wake = self->py_owns;       /* news for Python, who serves the ring now */
        if (!self->py_owns) {
            long queued = 0;
            int rest = 0;
            long n = gone ? -1 : serve_ring(self, &self->next, &rest, &queued, 1);
            self->ring_walks++;
            if (n < 0 || rest) {
                self->py_owns = 1;
                self->handovers++;
                wake = 1;
            }
        }
        pthread_mutex_unlock(&self->walk_mu);
        if (wake)
            bump(self->done_fd);
    }
    return NULL;
}

static PyObject *FastPath_start_ring(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    int event_fd, event_size;
    unsigned long nx;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "start_ring(event_fd, event_size, next)");
        return NULL;
    }
    event_fd = (int)PyLong_AsLong(args[0]);
    event_size = (int)PyLong_AsLong(args[1]);
    nx = PyLong_AsUnsignedLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (self->ring_running || !self->started || self->done_fd < 0 || !self->have_view || event_fd < 0 ||
            (event_size != 4 && event_size != 8) || nx >= self->cmdr_size) {
        PyErr_SetString(PyExc_ValueError, "start_ring(): once, after start(), with a done_fd");
        return NULL;
    }
    int kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (kick < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    self->kick_fd = kick;
    self->event_fd = event_fd;
    self->event_size = event_size;
    self->next = (uint32_t)nx;
    self->py_owns = 1;                  /* until resume(): the loop serves what is queued first */
    self->ring_stop = 0;
    int e = pthread_create(&self->ring_tid, NULL, ring_main, self);
    if (e) {
        close(kick);
        self->kick_fd = -1;
        errno = e;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->ring_running = 1;
    Py_RETURN_NONE;
}

/* Python takes the ring (the ring thread ends its walk first): its position. */
static PyObject *FastPath_pause(FastPath *self, PyObject *unused)
{
    uint32_t nx;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->walk_mu);
    self->py_owns = 1;
    nx = self->next;
    pthread_mutex_unlock(&self->walk_mu);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLong(nx);
}

/* Python hands the ring back at `next`: the ring thread walks from there, at once when
 * commands came after Python's last look (their notifications went to Python). */
static PyObject *FastPath_resume(FastPath *self, PyObject *arg)
{
    unsigned long nx = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (!self->ring_running || nx >= self->cmdr_size) {
        PyErr_SetString(PyExc_ValueError, "resume(next): no ring thread, or a position outside the ring");
        return NULL;
    }
    int kick;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->walk_mu);
    self->next = (uint32_t)nx;
    self->py_owns = 0;
    pthread_mutex_unlock(&self->walk_mu);
    kick = load_head(self->map) != (uint32_t)nx;
    Py_END_ALLOW_THREADS
    if (kick && bump(self->kick_fd) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* Python takes the ring for good: the ring thread ends; its position. */
static uint32_t stop_ring(FastPath *self)
{
    if (!self->ring_running)
        return self->next;
    pthread_mutex_lock(&self->walk_mu);
    self->ring_stop = 1;
    self->py_owns = 1;
    pthread_mutex_unlock(&self->walk_mu);
    bump(self->kick_fd);
    pthread_join(self->ring_tid, NULL);
    close(self->kick_fd);
    self->kick_fd = -1;
    self->ring_running = 0;
    return self->next;
}

static PyObject *FastPath_stop_ring(FastPath *self, PyObject *unused)
{
    uint32_t nx;
    Py_BEGIN_ALLOW_THREADS
    nx = stop_ring(self);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLong(nx);
}

static PyObject *FastPath_start(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    long copy, wait, uring = 0;
    if ((nargs != 2 && nargs != 3) || (copy = PyLong_AsLong(args[0])) == -1 ||
            (wait = PyLong_AsLong(args[1])) == -1 || (nargs == 3 && (uring = PyObject_IsTrue(args[2])) < 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "start(copy_threads, wait_threads, uring=False)");
        return NULL;
    }
    if (self->started || copy < 0 || wait < 0 || copy > LANE_MAX_THREADS || wait > LANE_MAX_THREADS ||
            self->done_fd < 0 || !self->have_view) {
        PyErr_SetString(PyExc_ValueError, "start(copy_threads, wait_threads): 0..64 each, once, with a done_fd");
        return NULL;
    }
    self->uring_errno = 0;
    if (uring && wait > 0) {
        int e = 0;
        Py_BEGIN_ALLOW_THREADS
        if (uring_setup(&self->uring) < 0)
            e = errno;
        else if ((e = pthread_create(&self->uring.tid, NULL, uring_main, self)) != 0)
            uring_free(&self->uring);
        else
            self->uring.running = 1;
        Py_END_ALLOW_THREADS
        self->uring_errno = e;          /* the wait lane keeps its threads */
    }
    pthread_mutex_lock(&self->mu);
    self->lanes[LANE_COPY].max = (int)copy;
    self->lanes[LANE_WAIT].max = (int)wait;
    self->started = 1;
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_NONE;
}

/* On the loop: the commands the threads handed back, as (cmd_id, cdb, [(data-area offset,
 * length), ...]), for Python to serve with its full semantics. */
static PyObject *FastPath_reap(FastPath *self, PyObject *unused)
{
    uint64_t v;
    if (self->done_fd >= 0 && read(self->done_fd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing signalled since the last reap; what is there is taken anyway */
    }
    pthread_mutex_lock(&self->mu);
    Job *j = self->failed;
    self->failed = self->failed_last = NULL;
    pthread_mutex_unlock(&self->mu);
    PyObject *out = PyList_New(0);
    for (Job *nj; j != NULL; j = nj) {
        nj = j->next;
        if (out != NULL) {
            PyObject *iovs = PyList_New(j->iov_cnt), *item = NULL;
            if (iovs != NULL) {
                for (int i = 0; i < j->iov_cnt; i++)
                    PyList_SET_ITEM(iovs, i, Py_BuildValue("(KK)",
                        (unsigned long long)((uint8_t *)j->iov[i].iov_base - self->map),
                        (unsigned long long)j->iov[i].iov_len));
                item = Py_BuildValue("(iy#N)", (int)j->cmd_id, (const char *)j->cdb, (Py_ssize_t)j->cdb_len, iovs);
            }
            if (item == NULL || PyList_Append(out, item) < 0)
                Py_CLEAR(out);      /* MemoryError: the daemon fails the device */
            Py_XDECREF(item);
        }
        __atomic_fetch_sub(&self->in_flight, 1, __ATOMIC_RELEASE);
        free(j);
    }
    return out;
}

/* Until the threads have done every command handed to them (answered or handed back). */
static PyObject *FastPath_wait_idle(FastPath *self, PyObject *unused)
{
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    while (self->running > 0)
        pthread_cond_wait(&self->idle_cv, &self->mu);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static void stop_threads(FastPath *self)
{
    if (!self->started)
        return;
    pthread_mutex_lock(&self->mu);
    self->stopping = 1;
    for (int l = 0; l < LANES; l++)
        pthread_cond_broadcast(&self->lanes[l].cv);
    pthread_mutex_unlock(&self->mu);
    /* a copy thread may start a wait thread until it ends: the wait lane is joined after */
    for (int l = 0; l < LANES; l++) {
        Lane *L = &self->lanes[l];
        for (int i = 0; i < L->nthreads; i++)
            pthread_join(L->tid[i], NULL);
        L->nthreads = 0;
    }
    if (self->uring.running) {
        /* after the copy threads, which may hand it reads until they end; it reaps what is in
         * flight first */
        bump(self->uring.stop_fd);
        pthread_join(self->uring.tid, NULL);
        uring_free(&self->uring);
    }
    for (Job *j = self->failed, *nj; j != NULL; j = nj) {
        nj = j->next;
        free(j);
    }
    self->failed = self->failed_last = NULL;
    self->in_flight = 0;
    self->started = 0;
    unmap_file(self);
}

static PyObject *FastPath_close(FastPath *self, PyObject *unused)
{
    /* the threads write into the data area: they end before the mapping may go */
    Py_BEGIN_ALLOW_THREADS
    stop_ring(self);
    stop_threads(self);
    unmap_file(self);               /* the ring thread's writes may have mapped it alone */
    Py_END_ALLOW_THREADS
    if (self->have_view) {
        PyBuffer_Release(&self->view);
        self->have_view = 0;
        self->map = NULL;
    }
    Py_RETURN_NONE;
}

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "fd", "doorbell_fd", "lock", "done_fd", "dfd", NULL};
    PyObject *buf, *lock = NULL;
    int fd, doorbell_fd, done_fd = -1, dfd = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oii|O!ii", kwlist, &buf, &fd, &doorbell_fd,
                                     &RingLockType, &lock, &done_fd, &dfd))
        return -1;
    if (self->have_view || self->lock) {
        PyErr_SetString(PyExc_ValueError, "a FastPath is set up once");
        return -1;
    }
    if (lock == NULL && (lock = PyObject_CallNoArgs((PyObject *)&RingLockType)) == NULL)
        return -1;
    else if (lock != NULL)
        Py_INCREF(lock);
    self->lock = (RingLock *)lock;
    pthread_mutex_init(&self->mu, NULL);
    pthread_mutex_init(&self->walk_mu, NULL);
    pthread_mutex_init(&self->write_mu, NULL);
    self->kick_fd = -1;
    self->uring.fd = self->uring.stop_fd = -1;
    pthread_cond_init(&self->idle_cv, NULL);
    for (int l = 0; l < LANES; l++)
        pthread_cond_init(&self->lanes[l].cv, NULL);
    if (PyObject_GetBuffer(buf, &self->view, PyBUF_WRITABLE | PyBUF_SIMPLE) < 0)
        return -1;
    self->have_view = 1;
    self->map = self->view.buf;
    self->map_len = (uint64_t)self->view.len;
    if (self->map_len < MAILBOX_SIZE) {
        PyErr_SetString(PyExc_ValueError, "mapping smaller than the mailbox");
        return -1;
    }
    self->cmdr_off = get_u32(self->map + MB_CMDR_OFF);
    self->cmdr_size = get_u32(self->map + MB_CMDR_SIZE);
    if (self->cmdr_size == 0 || self->cmdr_off < MAILBOX_SIZE || self->cmdr_off + self->cmdr_size > self->map_len) {
        PyErr_SetString(PyExc_ValueError, "mailbox describes a ring outside the mapping");
        return -1;
    }
    self->data_off = self->cmdr_off + self->cmdr_size;
    self->fd = fd;
    self->doorbell_fd = doorbell_fd;
    self->done_fd = done_fd;
    self->dfd = dfd >= 0 ? dfd : fd;
    self->enabled = 0;          /* until Device._fast_config says what is allowed */
    self->reads = READS_OFF;
    self->writes = 0;
    self->max_write = LLONG_MAX;    /* every write-back write inline until told otherwise */
    self->block_size = 512;
    self->map_check = 1;
    self->map_write_min = 128 * 1024;
    return 0;
}

static void FastPath_dealloc(FastPath *self)
{
    stop_ring(self);
    stop_threads(self);
    unmap_file(self);
    if (self->have_view)
        PyBuffer_Release(&self->view);
    Py_XDECREF(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef FastPath_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))FastPath_serve, METH_FASTCALL,
     "serve(next, ring_bell) -> (next, answered, rest) or None: answer the plain "
     "READs and WRITEs from the ring position `next` on, stopping at the first other entry "
     "(rest: entries are left for Python)"},
    {"close", (PyCFunction)FastPath_close, METH_NOARGS,
     "stop the threads (after what they hold is done) and let go of the mapping"},
    {"start", (PyCFunction)(void (*)(void))FastPath_start, METH_FASTCALL,
     "start(copy_threads, wait_threads, uring=False): the most threads of each lane, started as "
     "work comes; with uring, the wait lane submits to io_uring where the kernel allows it"},
    {"reap", (PyCFunction)FastPath_reap, METH_NOARGS,
     "reap() -> [(cmd_id, cdb, [(offset, length), ...])]: the commands the threads handed back"},
    {"wait_idle", (PyCFunction)FastPath_wait_idle, METH_NOARGS,
     "wait until the threads have done every command handed to them"},
    {"start_ring", (PyCFunction)(void (*)(void))FastPath_start_ring, METH_FASTCALL,
     "start_ring(event_fd, event_size, next): the ring thread, owned by Python until resume()"},
    {"pause", (PyCFunction)FastPath_pause, METH_NOARGS,
     "pause() -> next: Python takes the ring (the ring thread only wakes it until resume)"},
    {"resume", (PyCFunction)FastPath_resume, METH_O,
     "resume(next): the ring thread walks on from next"},
    {"stop_ring", (PyCFunction)FastPath_stop_ring, METH_NOARGS,
     "stop_ring() -> next: the ring thread ends (its position returned)"},
    {NULL}
};

static PyMemberDef FastPath_members[] = {
    {"enabled", T_INT, offsetof(FastPath, enabled), 0, "serve anything at all"},
    {"reads", T_INT, offsetof(FastPath, reads), 0, "0 off, 1 plain, 2 from the page cache only"},
    {"writes", T_INT, offsetof(FastPath, writes), 0, "serve write-back WRITEs"},
    {"mapped", T_LONGLONG, offsetof(FastPath, mapped), READONLY, "copy-lane reads served from the file's mapping"},
    {"map_check", T_INT, offsetof(FastPath, map_check), 0,
     "1: a copy from the mapping only when mincore says every page is resident (tests set 0)"},
    {"max_read", T_LONGLONG, offsetof(FastPath, max_read), 0, "largest read served, bytes"},
    {"bell_yield", T_INT, offsetof(FastPath, bell_yield), 0,
     "yield the CPU after a doorbell (the kernel completes where it rang)"},
    {"max_write", T_LONGLONG, offsetof(FastPath, max_write), 0,
     "largest write-back write served inline, bytes (larger: the copy lane)"},
    {"num_blocks", T_LONGLONG, offsetof(FastPath, num_blocks), 0, "the unit's blocks"},
    {"block_size", T_INT, offsetof(FastPath, block_size), 0, "the unit's block size"},
    {"commands", T_LONGLONG, offsetof(FastPath, commands), READONLY, "commands answered"},
    {"reads_done", T_LONGLONG, offsetof(FastPath, read_count), READONLY, "READs answered"},
    {"writes_done", T_LONGLONG, offsetof(FastPath, write_count), READONLY, "WRITEs answered"},
    {"read_bytes", T_LONGLONG, offsetof(FastPath, read_bytes), READONLY, "bytes read"},
    {"write_bytes", T_LONGLONG, offsetof(FastPath, write_bytes), READONLY, "bytes written"},
    {"spin_ns", T_LONGLONG, offsetof(FastPath, spin_ns), 0, "wait this long for more after a doorbell"},
    {"spins", T_LONGLONG, offsetof(FastPath, spins), READONLY, "spins after a doorbell"},
    {"mapped_writes", T_LONGLONG, offsetof(FastPath, mapped_writes), READONLY, "writes copied into the mapping"},
    {"copied_writes", T_LONGLONG, offsetof(FastPath, copied_writes), READONLY, "write-back writes the copy lane did"},
    {"map_write_min", T_LONGLONG, offsetof(FastPath, map_write_min), 0, "smallest write copied into the mapping"},
    {"spin_hits", T_LONGLONG, offsetof(FastPath, spin_hits), READONLY, "spins that caught a command"},
    {"bursts", T_LONGLONG, offsetof(FastPath, bursts), READONLY, "walks after a doorbell that found more"},
    {"walks", T_LONGLONG, offsetof(FastPath, walks), READONLY, "walks of the ring that served something"},
    {"copied", T_LONGLONG, offsetof(FastPath, copied), READONLY, "reads answered by a copy thread"},
    {"waited", T_LONGLONG, offsetof(FastPath, waited), READONLY, "commands answered by a wait thread"},
    {"in_flight", T_LONG, offsetof(FastPath, in_flight), READONLY, "taken, not yet answered nor reaped"},
    {"copy_threads", T_INT, offsetof(FastPath, lanes[0].nthreads), READONLY, "copy threads running"},
    {"wait_threads", T_INT, offsetof(FastPath, lanes[1].nthreads), READONLY, "wait threads running"},
    {"writable", T_INT, offsetof(FastPath, writable), 0, "WRITEs may be served (to the wait lane)"},
    {"write_back", T_INT, offsetof(FastPath, write_back), 0, "the write cache is on"},
    {"ring_running", T_INT, offsetof(FastPath, ring_running), READONLY, "the ring thread runs"},
    {"py_owns", T_INT, offsetof(FastPath, py_owns), READONLY, "Python serves the ring now"},
    {"handovers", T_LONGLONG, offsetof(FastPath, handovers), READONLY, "times the ring thread woke Python to serve"},
    {"ring_walks", T_LONGLONG, offsetof(FastPath, ring_walks), READONLY, "wake-ups of the ring thread that walked"},
    {"uring", T_INT, offsetof(FastPath, uring.running), READONLY, "the wait lane submits to io_uring"},
    {"uring_errno", T_INT, offsetof(FastPath, uring_errno), READONLY, "why io_uring was asked for and not set up"},
    {"uring_submits", T_LONGLONG, offsetof(FastPath, uring.submits), READONLY, "io_uring_enter calls that submitted"},
    {NULL}
};

/* RingLock for Python: `with lock:` (the GIL let go while it waits), claim_bell(), ring_bell(fd) */

static int RingLock_init(RingLock *self, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "RingLock() takes no arguments");
        return -1;
    }
    return 0;
}

static PyObject *RingLock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    RingLock *self = (RingLock *)type->tp_alloc(type, 0);
    if (self != NULL)
        pthread_mutex_init(&self->mu, NULL);
    return (PyObject *)self;
}

static void RingLock_dealloc(RingLock *self)
{
    pthread_mutex_destroy(&self->mu);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *RingLock_enter(RingLock *self, PyObject *unused)
{
    if (pthread_mutex_trylock(&self->mu) != 0) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->mu);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *RingLock_exit(RingLock *self, PyObject *const *args, Py_ssize_t nargs)
{
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_FALSE;
}

static PyObject *RingLock_claim_bell(RingLock *self, PyObject *unused)
{
    return PyBool_FromLong(rl_claim(self));
}

static PyObject *RingLock_ring_bell(RingLock *self, PyObject *arg)
{
    long fdl = PyLong_AsLong(arg);
    int fd = (int)fdl, r, err = 0;
    if (fdl == -1 && PyErr_Occurred())
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = rl_ring(self, fd);
    if (r < 0)
        err = errno;
    Py_END_ALLOW_THREADS
    if (r < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyMethodDef RingLock_methods[] = {
    {"__enter__", (PyCFunction)RingLock_enter, METH_NOARGS, "take the lock"},
    {"__exit__", (PyCFunction)(void (*)(void))RingLock_exit, METH_FASTCALL, "let go of it"},
    {"claim_bell", (PyCFunction)RingLock_claim_bell, METH_NOARGS,
     "under the lock, after writing answers: whether the caller rings the doorbell (ring_bell)"},
    {"ring_bell", (PyCFunction)RingLock_ring_bell, METH_O,
     "ring_bell(fd), without the lock: ring until no answer is left waiting"},
    {NULL}
};

static PyMemberDef RingLock_members[] = {
    {"bell_pending", T_INT, offsetof(RingLock, bell_pending), READONLY, "an answer waits for a doorbell"},
    {"bell_busy", T_INT, offsetof(RingLock, bell_busy), READONLY, "someone is ringing it"},
    {"doorbells", T_LONGLONG, offsetof(RingLock, doorbells), READONLY, "doorbell writes"},
    {NULL}
};

static PyTypeObject RingLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lioctl.tcmu._fastpath.RingLock",
    .tp_basicsize = sizeof(RingLock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A device ring's lock and doorbell protocol, shared by Python and the native path",
    .tp_new = RingLock_new,
    .tp_init = (initproc)RingLock_init,
    .tp_dealloc = (destructor)RingLock_dealloc,
    .tp_methods = RingLock_methods,
    .tp_members = RingLock_members,
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lioctl.tcmu._fastpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One device's native READ/WRITE path over its mapped ring",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_methods = FastPath_methods,
    .tp_members = FastPath_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath",
    "The TCMU handler's native path for plain READs and WRITEs (see lioctl/tcmu/device.py).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&FastPathType) < 0 || PyType_Ready(&RingLockType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(m, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(&FastPathType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RingLockType);
    if (PyModule_AddObject(m, "RingLock", (PyObject *)&RingLockType) < 0) {
        Py_DECREF(&RingLockType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
