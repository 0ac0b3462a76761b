/* The TCMU handler's native path for plain READs and WRITEs on a file or block device.
 *
 * Why: under emulation every Python step of the per-command path costs tens of
 * microseconds, and a queue-depth-1 job pays them all (the guest's hot path: ~220 us of
 * Python per 4 KiB read against tcmu-runner's C). This walks the command ring from the
 * handler's position, and for each READ(10/12/16) or write-back WRITE(10/12/16) that is
 * unremarkable -- in range, data length matching, page cache holding a read's data
 * (RWF_NOWAIT) -- does the I/O straight between the file and the data area, writes GOOD
 * into the tail slot and goes on. At the first entry it does not take (any other opcode,
 * FUA, a range or length error, an I/O that would wait or fails, anything odd in the ring)
 * it stops and returns, and lioctl/tcmu/device.py's Python path serves that entry and the
 * rest of the batch with its full semantics (senses, threads, unit attentions).
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

#include <errno.h>
#include <stdint.h>
#include <string.h>
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

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int have_view;
    uint8_t *map;
    uint64_t map_len, cmdr_off, cmdr_size, data_off;
    int fd;                     /* the backend's buffered descriptor */
    int doorbell_fd;
    /* set from Python (Device._fast_config) whenever what they mirror may have changed */
    int enabled;                /* no unit attention pending, the device not failed */
    int reads;                  /* READS_OFF, READS_PLAIN (memory), READS_NOWAIT (may wait) */
    int writes;                 /* write-back, writable, buffered */
    long long max_read;         /* larger reads go to Python (and its I/O threads) */
    long long num_blocks;
    int block_size;
    /* counters, added to the device's own in its status */
    long long commands, read_count, write_count, read_bytes, write_bytes;
    long long bursts;           /* walks after a doorbell that found more to serve */
    long long spin_ns;
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

/* One walk from *next to cmd_head, serving; returns how many commands were answered. *next
 * follows ring.py's Ring.next; Ring.pending does not change (every command taken here is
 * answered here). */
static long walk(FastPath *self, uint32_t *next, int *rest)
{
    uint8_t *map = self->map;
    const uint64_t map_len = self->map_len, data_off = self->data_off, base = self->cmdr_off;
    const uint32_t size = (uint32_t)self->cmdr_size;
    uint32_t head = load_head(map), nxt = *next;
    long answered = 0;
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
        if (is_write ? (!self->writes || (cdb[1] & 0x08)) : self->reads == READS_OFF)
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
        if (bad || total != want || (!is_write && total > (uint64_t)self->max_read))
            break;
        /* the answer's slot, checked before any I/O: a ring that cannot take the answer is
         * Python's to fail, with nothing done */
        uint32_t after = (nxt + length) % size, slot, new_tail;
        uint32_t tail = __atomic_load_n((uint32_t *)(map + MB_CMD_TAIL), __ATOMIC_RELAXED);
        uint32_t taken = (after - tail + size) % size;
        if (!answer_slot(self, tail, taken, &slot, &new_tail))
            break;
        off_t pos = (off_t)(lba * (uint64_t)self->block_size);
        ssize_t got;
        if (is_write) {
            got = pwritev2(self->fd, iov, (int)iov_cnt, pos, 0);
        } else {
            got = preadv2(self->fd, iov, (int)iov_cnt, pos, self->reads == READS_NOWAIT ? RWF_NOWAIT : 0);
            if (got < 0 && (errno == EOPNOTSUPP || errno == EINVAL) && self->reads == READS_NOWAIT)
                self->reads = READS_OFF;    /* no RWF_NOWAIT here: Python finds out too */
        }
        if (got < 0 || (uint64_t)got != total)
            break;                          /* would wait, short, failed: Python's to answer */
        /* GOOD at the slot: cmd_id, kflags kept, uflags 0, status 0, read_len 0 */
        uint8_t *s = map + base + slot;
        memcpy(s + 4, &cmd_id, 2);
        s[7] = 0;
        memset(s + 8, 0, 8);
        store_tail(map, new_tail);
        nxt = after;
        left -= length;
        answered++;
        self->commands++;
        if (is_write) {
            self->write_count++;
            self->write_bytes += (long long)total;
        } else {
            self->read_count++;
            self->read_bytes += (long long)total;
        }
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

/* Up to spin_ns for cmd_head to move past `next`: the initiator's next command is often on
 * its way, and a wake-up through the event loop costs more than serving it (device.py:
 * SPIN_NS, LIOCTL_TCMU_SPIN_US). */
static int spin_for_more(FastPath *self, uint32_t next)
{
    if (self->spin_ns <= 0)
        return 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (load_head(self->map) != next)
                return 1;
            cpu_relax();
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) > self->spin_ns)
            return 0;
    }
}

/* Walk, answer, ring; returns how many commands were answered, or -1 with errno when the
 * doorbell write failed. After the doorbell (where the kernel completes what was answered,
 * and its initiator may queue more) the ring is looked at again: what arrived meanwhile is
 * served now rather than after another wake-up of the Python loop, which under emulation
 * costs more than the commands (4k QD32 in the guest: one wake-up per command or two).
 * Bounded, so the loop's other devices get their turn. */
static long serve_ring(FastPath *self, uint32_t *next, int *rest, int ring_bell)
{
    static const uint32_t zero = 0;
    long total = 0;
    for (int round = 1;; round++) {
        long answered = walk(self, next, rest);
        total += answered;
        if (!answered || !ring_bell)
            break;
        if (write(self->doorbell_fd, &zero, 4) < 0)
            return -1;
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
    long answered;
    int err = 0, rest = 1;
    Py_BEGIN_ALLOW_THREADS
    answered = serve_ring(self, &next, &rest, ring_bell);
    if (answered < 0)
        err = errno;
    Py_END_ALLOW_THREADS
    if (answered < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (answered == 0 && next == before)
        Py_RETURN_NONE;
    return Py_BuildValue("(klO)", (unsigned long)next, answered, rest ? Py_True : Py_False);
}

static PyObject *FastPath_close(FastPath *self, PyObject *unused)
{
    if (self->have_view) {
        PyBuffer_Release(&self->view);
        self->have_view = 0;
        self->map = NULL;
    }
    Py_RETURN_NONE;
}

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "fd", "doorbell_fd", NULL};
    PyObject *buf;
    int fd, doorbell_fd;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oii", kwlist, &buf, &fd, &doorbell_fd))
        return -1;
    if (self->have_view) {
        PyBuffer_Release(&self->view);
        self->have_view = 0;
    }
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
    self->enabled = 0;          /* until Device._fast_config says what is allowed */
    self->reads = READS_OFF;
    self->writes = 0;
    self->block_size = 512;
    return 0;
}

static void FastPath_dealloc(FastPath *self)
{
    if (self->have_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef FastPath_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))FastPath_serve, METH_FASTCALL,
     "serve(next, ring_bell) -> (next, answered, rest) or None: answer the plain "
     "READs and WRITEs from the ring position `next` on, stopping at the first other entry "
     "(rest: entries are left for Python)"},
    {"close", (PyCFunction)FastPath_close, METH_NOARGS, "let go of the mapping"},
    {NULL}
};

static PyMemberDef FastPath_members[] = {
    {"enabled", T_INT, offsetof(FastPath, enabled), 0, "serve anything at all"},
    {"reads", T_INT, offsetof(FastPath, reads), 0, "0 off, 1 plain, 2 from the page cache only"},
    {"writes", T_INT, offsetof(FastPath, writes), 0, "serve write-back WRITEs"},
    {"max_read", T_LONGLONG, offsetof(FastPath, max_read), 0, "largest read served, bytes"},
    {"num_blocks", T_LONGLONG, offsetof(FastPath, num_blocks), 0, "the unit's blocks"},
    {"block_size", T_INT, offsetof(FastPath, block_size), 0, "the unit's block size"},
    {"commands", T_LONGLONG, offsetof(FastPath, commands), READONLY, "commands answered"},
    {"reads_done", T_LONGLONG, offsetof(FastPath, read_count), READONLY, "READs answered"},
    {"writes_done", T_LONGLONG, offsetof(FastPath, write_count), READONLY, "WRITEs answered"},
    {"read_bytes", T_LONGLONG, offsetof(FastPath, read_bytes), READONLY, "bytes read"},
    {"write_bytes", T_LONGLONG, offsetof(FastPath, write_bytes), READONLY, "bytes written"},
    {"spin_ns", T_LONGLONG, offsetof(FastPath, spin_ns), 0, "wait this long for more after a doorbell"},
    {"bursts", T_LONGLONG, offsetof(FastPath, bursts), READONLY, "walks after a doorbell that found more"},
    {NULL}
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
    if (PyType_Ready(&FastPathType) < 0)
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
    return m;
}
