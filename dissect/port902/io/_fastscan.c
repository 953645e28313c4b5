/*
 * _fastscan: the per-record filter of dissect/port902/capture.py, in C.
 *
 * It walks the records of a capture held in a bytes-like buffer (bytes, or an mmap of
 * the file) from a given offset and returns only the records that the pure-Python
 * decoder (CaptureReader._decoder) would keep.  An uninteresting record costs a few
 * integer operations and creates no Python object.  A kept TCP or UDP packet comes back
 * as the Packet that CaptureReader._full_decode would build (same fields, the timestamp
 * computed with the same Python number operations); every other kept record -- an authd
 * greeting, a TCP header cut by the snaplen (a warning), ICMP -- comes back as a raw
 * entry that Python decodes with _full_decode itself.
 *
 * The selection rules are a line-by-line transcription of the Python decoder,
 * including its quirks: reads that the Python code does not bound by the end of the
 * record are bounded here, like there, by the end of the buffer only (Python's
 * IndexError / struct.error -> "not selected").  Every read is checked against the
 * buffer length; every loop advances by at least 4 bytes, so hostile input can neither
 * read out of bounds nor loop forever.
 *
 * Whatever is unusual (a corrupt record length, a pcapng section or interface block, a
 * packet block that needs a warning) is not handled here: the scanner stops at that
 * record with STOP_SLOW and Python handles it with the same code as the pure path, so
 * warnings cannot drift between the two engines.
 *
 *   scan_pcap(buf, off, big_endian, limit, etoff, l3off, frame,
 *             tcp_map, ctl_map, udp_map, flags, max_bytes, max_selected, packet_type, tsinfo)
 *   scan_pcapng(buf, off, big_endian, ifaces, frame,
 *               tcp_map, ctl_map, udp_map, flags, max_bytes, max_selected, packet_type, tsinfo)
 *       -> (off, frame, reason, [Packet or entry, ...], next offsets)
 *
 *   entry = (rec_off, next_off, frame, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b,
 *            ifid, greeting_port or -1)
 *
 * packet_type is capture.Packet (a tuple subclass); tsinfo gives (divisor, offset) for the
 * timestamp, ts = ts_a + ts_b / divisor + offset: one pair for pcap, a list with one pair
 * (or None) per interface for pcapng.  next offsets: bytes holding, per returned item, the
 * native int64 offset of the record after it (to rescan from there).
 *
 * tcp_map / ctl_map / udp_map are 65536-byte flag tables (bytearray; tcp_map is written
 * when an authd greeting is seen on an unwatched port, as the Python decoder adds the
 * port to Selection.tcp_ports).  ifaces holds two native int32 per pcapng interface:
 * (EtherType offset, network header offset), or (IFACE_NONE, 0) for an unsupported
 * link type.  flags: F_ICMP, F_GREET, F_UDP (udp_ports not empty), F_DECODE (pcap: the
 * link type is supported).  reason: STOP_NEED_MORE (the next record is not complete in
 * the buffer), STOP_BUDGET (max_bytes scanned), STOP_FULL (max_selected entries),
 * STOP_SLOW (Python must handle the record at off).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#define API_VERSION 5

enum { STOP_NEED_MORE = 0, STOP_BUDGET = 1, STOP_FULL = 2, STOP_SLOW = 3, STOP_FAULT = 4 };

/* A memory-mapped file that shrinks while it is scanned (rewritten, truncated, a capture tool
 * restarting on the same name) turns every read past its new end into SIGBUS.  While a scan
 * runs, SIGBUS jumps back into the scan, which returns STOP_FAULT at the first record it had not
 * finished: Python warns (truncated_file) and keeps what came before.  The handler is installed
 * for the duration of one call (the previous one, e.g. faulthandler's, is put back after it); a
 * SIGBUS outside a scan goes to the default action as before. */
static _Thread_local sigjmp_buf *fault_jmp;

static void on_fault(int sig)
{
    if (fault_jmp != NULL)
        siglongjmp(*fault_jmp, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct {
    struct sigaction old;
    int armed;
} guard_t;

static void guard_arm(guard_t *g, sigjmp_buf *jb)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER; /* not blocked in the handler: nothing to unblock after the jump */
    g->armed = sigaction(SIGBUS, &sa, &g->old) == 0;
    fault_jmp = jb;
}

static void guard_disarm(guard_t *g)
{
    fault_jmp = NULL;
    if (g->armed)
        sigaction(SIGBUS, &g->old, NULL);
    g->armed = 0;
}

#define F_ICMP 1
#define F_GREET 2
#define F_UDP 4
#define F_DECODE 8

#define IFACE_NONE (-32768)
#define PORT_MAP_SIZE 65536
#define MAX_RECORD ((int64_t)256 << 20)
#define PCAPNG_SHB 0x0A0D0D0Au

/* what is kept of a control port: formats.CONTROL_TCP_FLAGS / CONTROL_FIRST_BYTES (checked equal at load) */
#define CTL_FLAGS 0x07
static const unsigned char CTL_FIRST[] = "\x16" "G";
static const unsigned char GREETING[] = "220 VMware Authentication Daemon";
#define GREETING_LEN ((int64_t)(sizeof(GREETING) - 1))
/* a VNC server's ProtocolVersion (RFC 6143): plain VNC consoles on any port (analyzers/vnc.py) */
static const unsigned char RFB_GREETING[] = "RFB 003.";
#define RFB_GREETING_LEN ((int64_t)(sizeof(RFB_GREETING) - 1))

typedef struct {
    const uint8_t *b;
    int64_t n; /* buffer length: the bound of every read */
    uint8_t *tcp;
    const uint8_t *ctl;
    const uint8_t *udp;
    int flags;
} ctx_t;

typedef struct {
    int64_t l3, l4;
    int ver, proto;
    long greet;
} hit_t;

/* Records are contiguous, but where the next one starts is only known once this one's
 * length is read: without help every record costs a trip to memory.  So the scanners
 * prefetch the bytes ahead of them (a hint; never dereferenced, clamped to the buffer). */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 4096
#endif
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 0)
#else
#define PREFETCH(p) ((void)0)
#endif

static inline int64_t prefetch_to(const uint8_t *b, int64_t n, int64_t done, int64_t pos)
{
    int64_t want = pos + PREFETCH_AHEAD;
    if (want > n)
        want = n;
    while (done < want) {
        PREFETCH(b + done);
        done += 64;
    }
    return done;
}

static inline unsigned be16(const uint8_t *p) { return ((unsigned)p[0] << 8) | p[1]; }

static inline uint32_t rd32(const uint8_t *p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* The decision of CaptureReader._decoder().decode for the packet whose link-layer frame
 * starts at p and has incl captured bytes.  Returns 1 (keep, *h filled) or 0. */
static int decide(ctx_t *c, int64_t p, int64_t incl, int etoff, int l3off, hit_t *h)
{
    const uint8_t *b = c->b;
    const int64_t n = c->n;
    const int64_t end = p + incl;
    int64_t l3, l4;
    int ver, proto;

    if (p < 0)
        return 0;
    if (etoff >= 0) {
        int64_t i = p + etoff;
        unsigned et;
        if (i + 2 > n)
            return 0;
        et = be16(b + i);
        l3 = p + l3off;
        while (et == 0x8100 || et == 0x88A8 || et == 0x9100) {
            if (l3 + 4 > n)
                return 0;
            et = be16(b + l3 + 2);
            l3 += 4;
        }
        if (et == 0x0800)
            ver = 4;
        else if (et == 0x86DD)
            ver = 6;
        else
            return 0;
    }
    else {
        l3 = p + l3off;
        if (l3 >= n)
            return 0;
        ver = b[l3] >> 4;
    }

    if (ver == 4) {
        int ihl;
        if (l3 + 10 > n) /* Python reads buf[l3], buf[l3 + 9], buf[l3 + 7], buf[l3 + 6] */
            return 0;
        ihl = (b[l3] & 15) << 2;
        proto = b[l3 + 9];
        l4 = l3 + ihl;
        if (b[l3 + 7] | (b[l3 + 6] & 0x1F)) /* non-first fragment */
            return 0;
    }
    else if (ver == 6) {
        if (l3 + 7 > n)
            return 0;
        proto = b[l3 + 6];
        l4 = l3 + 40;
        while ((proto == 0 || proto == 43 || proto == 60 || proto == 51) && l4 + 2 <= end) {
            int nh;
            if (l4 + 2 > n)
                return 0;
            nh = b[l4];
            l4 += ((int64_t)b[l4 + 1] + 1) << 3;
            proto = nh;
        }
    }
    else
        return 0;

    h->greet = -1;
    if (proto == 6) {
        unsigned sp, dp;
        if (l4 + 4 > end || l4 + 4 > n)
            return 0;
        sp = be16(b + l4);
        dp = be16(b + l4 + 2);
        if (!(c->tcp[sp] || c->tcp[dp])) {
            int64_t data;
            int first;
            if (l4 + 14 > end || l4 + 14 > n)
                return 0;
            data = l4 + ((b[l4 + 12] >> 4) << 2);
            if (data < end && data >= n) /* Python: IndexError -> not selected */
                return 0;
            first = data < end ? b[data] : -1;
            if ((c->flags & F_GREET) && first == 0x32 && data + GREETING_LEN <= n
                && memcmp(b + data, GREETING, (size_t)GREETING_LEN) == 0) {
                c->tcp[sp] = 1; /* an authd server on an unusual port: follow it from now on */
                h->greet = (long)sp;
            }
            else if ((c->flags & F_GREET) && first == 0x52 && data + RFB_GREETING_LEN <= n
                     && memcmp(b + data, RFB_GREETING, (size_t)RFB_GREETING_LEN) == 0) {
                c->tcp[sp] = 1; /* a VNC server: the caller routes the port to the VNC side analysis */
                h->greet = (long)sp;
            }
            else if (!((c->ctl[sp] || c->ctl[dp])
                       && ((b[l4 + 13] & CTL_FLAGS) || first == CTL_FIRST[0] || first == CTL_FIRST[1])))
                return 0;
        }
    }
    else if (proto == 17) {
        unsigned sp, dp;
        if (!(c->flags & F_UDP) || l4 + 4 > end || l4 + 4 > n)
            return 0;
        sp = be16(b + l4);
        dp = be16(b + l4 + 2);
        if (!c->udp[sp] && !c->udp[dp])
            return 0;
    }
    else if (proto == 1 || proto == 58) {
        if (!(c->flags & F_ICMP))
            return 0;
    }
    else
        return 0;

    h->l3 = l3;
    h->l4 = l4;
    h->ver = ver;
    h->proto = proto;
    return 1;
}

/* Python's buf[a:z] for 0 <= a, z: clipped to the buffer, empty when z <= a. */
static PyObject *slice(const uint8_t *b, int64_t n, int64_t a, int64_t z)
{
    if (a > n)
        a = n;
    if (z > n)
        z = n;
    if (z < a)
        z = a;
    return PyBytes_FromStringAndSize((const char *)b + a, (Py_ssize_t)(z - a));
}

/* ts_a + ts_b / div + tsoff, evaluated with Python's own number operations, so that the
 * float is the one the pure-Python engine computes, to the last bit. */
static PyObject *timestamp(uint64_t ts_a, uint64_t ts_b, PyObject *div, PyObject *tsoff)
{
    PyObject *a = PyLong_FromUnsignedLongLong(ts_a), *b = PyLong_FromUnsignedLongLong(ts_b);
    PyObject *q = NULL, *s = NULL, *ts = NULL;
    if (a != NULL && b != NULL)
        q = PyNumber_TrueDivide(b, div);
    if (q != NULL)
        s = PyNumber_Add(a, q);
    if (s != NULL)
        ts = PyNumber_Add(s, tsoff);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(q);
    Py_XDECREF(s);
    return ts;
}

static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* CaptureReader._full_decode for a TCP packet with its whole header captured, or a UDP
 * packet with its header: the Packet.  NULL without an error set: a case for Python
 * (greeting, warning, ICMP); NULL with an error set: a Python error. */
static PyObject *make_packet(const ctx_t *c, int64_t p, int64_t incl, uint32_t orig, int64_t frame, const hit_t *h,
                             uint64_t ts_a, uint64_t ts_b, PyObject *packet_type, PyObject *div, PyObject *tsoff)
{
    const uint8_t *b = c->b;
    const int64_t n = c->n, end = p + incl, l3 = h->l3, l4 = h->l4;
    int64_t ip_end;
    PyObject *v[14] = {NULL};
    PyObject *pkt;
    int i;

    if (h->greet >= 0 || (h->proto != 6 && h->proto != 17) || l3 < 0 || l4 < 0 || end < 0)
        return NULL;
    if (h->proto == 6 ? (l4 + 20 > end || l4 + 20 > n) : (l4 + 8 > end || l4 + 8 > n))
        return NULL; /* a TCP header cut short (a warning) or a UDP one (nothing): Python's */
    if (h->proto == 6 && (b[l4 + 12] >> 4) < 5)
        return NULL; /* a TCP data offset under 5 words: malformed, Python's warning */
    if (h->ver == 4) {
        int64_t total;
        if (l3 + 4 > n)
            return NULL;
        total = be16(b + l3 + 2);
        if ((b[l3] & 15) < 5 || (total && total < ((b[l3] & 15) << 2) + (h->proto == 6 ? 20 : 8)))
            return NULL; /* an IPv4 header under 20 bytes, or a total length shorter than the headers */
        v[3] = slice(b, n, l3 + 12, l3 + 16);
        v[4] = slice(b, n, l3 + 16, l3 + 20);
        ip_end = total ? l3 + total : end; /* 0 = TSO super-frame: trust the capture */
    }
    else {
        int64_t plen;
        if (l3 + 6 > n)
            return NULL;
        plen = be16(b + l3 + 4);
        v[3] = slice(b, n, l3 + 8, l3 + 24);
        v[4] = slice(b, n, l3 + 24, l3 + 40);
        ip_end = plen ? l3 + 40 + plen : end;
    }
    if (h->proto == 6) {
        const uint8_t *t = b + l4;
        int64_t data = l4 + ((t[12] >> 4) << 2);
        v[5] = PyLong_FromLong((long)be16(t));
        v[6] = PyLong_FromLong((long)be16(t + 2));
        v[7] = PyLong_FromUnsignedLong(be32(t + 4));
        v[8] = PyLong_FromUnsignedLong(be32(t + 8));
        v[9] = PyLong_FromLong(t[13]);
        v[10] = PyLong_FromLong((long)be16(t + 14));
        v[11] = data < end ? slice(b, n, data, ip_end <= end ? ip_end : end) : PyBytes_FromStringAndSize(NULL, 0);
        v[12] = PyLong_FromLongLong(ip_end > data ? ip_end - data : 0);
    }
    else {
        const uint8_t *u = b + l4;
        int64_t ulen = be16(u + 4);
        int64_t stop = l4 + (ulen > 8 ? ulen : 8);
        v[5] = PyLong_FromLong((long)be16(u));
        v[6] = PyLong_FromLong((long)be16(u + 2));
        v[7] = PyLong_FromLong(0);
        v[8] = PyLong_FromLong(0);
        v[9] = PyLong_FromLong(0);
        v[10] = PyLong_FromLong(0);
        v[11] = slice(b, n, l4 + 8, stop <= end ? stop : end);
        v[12] = PyLong_FromLongLong(ulen > 8 ? ulen - 8 : 0);
    }
    v[0] = PyLong_FromLongLong(frame);
    v[1] = timestamp(ts_a, ts_b, div, tsoff);
    v[2] = PyLong_FromLong(h->proto);
    v[13] = PyLong_FromUnsignedLong(orig);
    for (i = 0; i < 14; i++)
        if (v[i] == NULL)
            goto fail;
    /* tuple.__new__(Packet, fields), as CPython's tuple_subtype_new does it */
    pkt = ((PyTypeObject *)packet_type)->tp_alloc((PyTypeObject *)packet_type, 14);
    if (pkt == NULL)
        goto fail;
    for (i = 0; i < 14; i++)
        PyTuple_SET_ITEM(pkt, i, v[i]); /* steals */
    return pkt;
fail:
    for (i = 0; i < 14; i++)
        Py_XDECREF(v[i]);
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "_fastscan: could not build a Packet");
    return NULL;
}

/* Append one entry; returns -1 on a Python error. */
static int add_entry(PyObject *list, int64_t rec_off, int64_t nxt, int64_t frame, int64_t p, int64_t incl,
                     uint32_t orig, const hit_t *h, uint64_t ts_a, uint64_t ts_b, int64_t ifid)
{
    PyObject *t = PyTuple_New(14);
    PyObject *v[14];
    int i, rc;
    if (t == NULL)
        return -1;
    v[0] = PyLong_FromLongLong(rec_off);
    v[1] = PyLong_FromLongLong(nxt);
    v[2] = PyLong_FromLongLong(frame);
    v[3] = PyLong_FromLongLong(p);
    v[4] = PyLong_FromLongLong(incl);
    v[5] = PyLong_FromUnsignedLong(orig);
    v[6] = PyLong_FromLongLong(h->l3);
    v[7] = PyLong_FromLongLong(h->l4);
    v[8] = PyLong_FromLong(h->ver);
    v[9] = PyLong_FromLong(h->proto);
    v[10] = PyLong_FromUnsignedLongLong(ts_a);
    v[11] = PyLong_FromUnsignedLongLong(ts_b);
    v[12] = PyLong_FromLongLong(ifid);
    v[13] = PyLong_FromLong(h->greet);
    for (i = 0; i < 14; i++) {
        if (v[i] == NULL) {
            int j;
            for (j = 0; j < 14; j++)
                Py_XDECREF(v[j]);
            Py_DECREF(t);
            return -1;
        }
    }
    for (i = 0; i < 14; i++)
        PyTuple_SET_ITEM(t, i, v[i]);
    rc = PyList_Append(list, t);
    Py_DECREF(t);
    return rc;
}

/* Append what Python gets for one kept record -- its Packet when C can build it, else the
 * raw entry -- and note the offset of the record after it.  -1 on a Python error. */
static int emit(PyObject *list, int64_t *nexts, const ctx_t *c, int64_t rec_off, int64_t nxt, int64_t frame,
                int64_t p, int64_t incl, uint32_t orig, const hit_t *h, uint64_t ts_a, uint64_t ts_b, int64_t ifid,
                PyObject *packet_type, PyObject *div, PyObject *tsoff)
{
    nexts[PyList_GET_SIZE(list)] = nxt;
    if (div != NULL) {
        PyObject *pkt = make_packet(c, p, incl, orig, frame, h, ts_a, ts_b, packet_type, div, tsoff);
        if (pkt != NULL) {
            int rc = PyList_Append(list, pkt);
            Py_DECREF(pkt);
            return rc;
        }
        if (PyErr_Occurred())
            return -1;
    }
    return add_entry(list, rec_off, nxt, frame, p, incl, orig, h, ts_a, ts_b, ifid);
}

static int check_packet_type(PyObject *packet_type)
{
    PyTypeObject *t = (PyTypeObject *)packet_type;
    if (!PyType_Check(packet_type) || !PyType_IsSubtype(t, &PyTuple_Type) || t->tp_basicsize != PyTuple_Type.tp_basicsize
        || t->tp_itemsize != PyTuple_Type.tp_itemsize || t->tp_alloc == NULL) {
        PyErr_SetString(PyExc_TypeError, "packet_type must be a tuple subclass without instance fields");
        return -1;
    }
    return 0;
}

/* The (divisor, offset) pair of a tsinfo item, borrowed; 0 when it is not one. */
static int ts_pair(PyObject *item, PyObject **div, PyObject **tsoff)
{
    if (item == NULL || !PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
        return 0;
    *div = PyTuple_GET_ITEM(item, 0);
    *tsoff = PyTuple_GET_ITEM(item, 1);
    return 1;
}

static PyObject *result_tuple(int64_t pos, long long frame, int reason, PyObject *list, const int64_t *nexts)
{
    PyObject *nb = PyBytes_FromStringAndSize((const char *)nexts,
                                             PyList_GET_SIZE(list) * (Py_ssize_t)sizeof(int64_t));
    if (nb == NULL)
        return NULL;
    return Py_BuildValue("(LLiON)", (long long)pos, frame, reason, list, nb);
}

static int check_maps(Py_buffer *tcp, Py_buffer *ctl, Py_buffer *udp)
{
    if (tcp->len != PORT_MAP_SIZE || ctl->len != PORT_MAP_SIZE || udp->len != PORT_MAP_SIZE) {
        PyErr_SetString(PyExc_ValueError, "port maps must be 65536 bytes long");
        return -1;
    }
    return 0;
}

static int check_common(Py_ssize_t off, Py_ssize_t max_bytes, Py_ssize_t max_sel)
{
    if (off < 0) {
        PyErr_SetString(PyExc_ValueError, "offset must not be negative");
        return -1;
    }
    if (max_bytes < 1 || max_sel < 1) {
        PyErr_SetString(PyExc_ValueError, "max_bytes and max_selected must be positive");
        return -1;
    }
    return 0;
}

/* What one scanner call has: the context, its arguments, and where it got to.  done_pos /
 * done_frame are volatile: after a SIGBUS jump they must hold what the walk last stored. */
typedef struct {
    ctx_t c;
    int64_t start, max_bytes, max_sel;
    int big;
    PyObject *list, *packet_type;
    int64_t *nexts;
    int64_t pos;
    long long frame;
    int reason;
    volatile int64_t done_pos;
    volatile long long done_frame;
    /* classic pcap */
    long long limit;
    int etoff, l3off;
    PyObject *div, *tsoff;
    /* pcapng */
    const unsigned char *ifraw;
    int64_t nif;
    PyObject *tsinfo;
} scan_t;

/* Run one walk under the SIGBUS guard (see on_fault): the result tuple; a fault returns what
 * was finished before the record it hit, with STOP_FAULT.  NULL on a Python error.  The guard
 * is set up here only, for both scanners. */
static PyObject *guarded_walk(int (*walk)(scan_t *), scan_t *st)
{
    guard_t guard = {.armed = 0};
    sigjmp_buf jb;
    int rc;
    st->done_pos = st->pos;
    st->done_frame = st->frame;
    guard_arm(&guard, &jb);
    if (sigsetjmp(jb, 0)) { /* the buffer's pages vanished under a record */
        guard_disarm(&guard);
        return result_tuple(st->done_pos, st->done_frame, STOP_FAULT, st->list, st->nexts);
    }
    rc = walk(st);
    guard_disarm(&guard);
    if (rc < 0)
        return NULL;
    return result_tuple(st->pos, st->frame, st->reason, st->list, st->nexts);
}

/* After one kept record was emitted: stop when max_selected entries are there. */
static inline int full(scan_t *st, int64_t nxt)
{
    if (PyList_GET_SIZE(st->list) >= st->max_sel) {
        st->pos = nxt;
        st->reason = STOP_FULL;
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- classic pcap */

static int walk_pcap(scan_t *st)
{
    ctx_t *c = &st->c;
    const uint8_t *b = c->b;
    const int64_t n = c->n;
    const int big = st->big;
    int64_t pos = st->pos;
    long long frame = st->frame;
    int64_t pf = pos;
    for (;;) {
        uint32_t ts_s, ts_f, incl, orig;
        int64_t nxt;
        hit_t h;
        pf = prefetch_to(b, n, pf, pos);
        st->done_pos = pos; /* every record before pos is finished */
        st->done_frame = frame;
        if (pos - st->start >= st->max_bytes) {
            st->reason = STOP_BUDGET;
            break;
        }
        if (pos + 16 > n) {
            st->reason = STOP_NEED_MORE;
            break;
        }
        ts_s = rd32(b + pos, big);
        ts_f = rd32(b + pos + 4, big);
        incl = rd32(b + pos + 8, big);
        orig = rd32(b + pos + 12, big);
        if ((long long)incl > st->limit) {
            st->reason = STOP_SLOW; /* corrupt record: Python warns and stops */
            break;
        }
        nxt = pos + 16 + (int64_t)incl;
        if (nxt > n) {
            st->reason = STOP_NEED_MORE;
            break;
        }
        frame++;
        if ((c->flags & F_DECODE) && decide(c, pos + 16, (int64_t)incl, st->etoff, st->l3off, &h)) {
            if (emit(st->list, st->nexts, c, pos, nxt, frame, pos + 16, (int64_t)incl, orig, &h, ts_s, ts_f, -1,
                     st->packet_type, st->div, st->tsoff) < 0)
                return -1;
            st->frame = frame;
            if (full(st, nxt))
                return 0;
        }
        pos = nxt;
    }
    st->pos = pos;
    st->frame = frame;
    return 0;
}

static PyObject *scan_pcap(PyObject *self, PyObject *args)
{
    Py_buffer buf = {0}, tcp = {0}, ctl = {0}, udp = {0};
    Py_ssize_t off, max_bytes, max_sel;
    int big, etoff, l3off, flags;
    long long limit, frame;
    PyObject *result = NULL, *packet_type, *tsinfo, *div = NULL, *tsoff = NULL;
    scan_t st;
    (void)self;

    memset(&st, 0, sizeof st);
    if (!PyArg_ParseTuple(args, "y*npLiiLw*y*y*innOO:scan_pcap", &buf, &off, &big, &limit, &etoff, &l3off, &frame,
                          &tcp, &ctl, &udp, &flags, &max_bytes, &max_sel, &packet_type, &tsinfo))
        return NULL;
    if (check_maps(&tcp, &ctl, &udp) < 0 || check_common(off, max_bytes, max_sel) < 0
        || check_packet_type(packet_type) < 0)
        goto done;
    if (!ts_pair(tsinfo, &div, &tsoff)) {
        PyErr_SetString(PyExc_TypeError, "tsinfo must be a (divisor, offset) pair");
        goto done;
    }
    st.nexts = PyMem_Malloc((size_t)max_sel * sizeof(int64_t));
    if (st.nexts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (etoff > 0xFFFF || etoff < -1 || l3off < 0 || l3off > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "bad link layout");
        goto done;
    }
    st.list = PyList_New(0);
    if (st.list == NULL)
        goto done;
    st.c.b = (const uint8_t *)buf.buf;
    st.c.n = (int64_t)buf.len;
    st.c.tcp = (uint8_t *)tcp.buf;
    st.c.ctl = (const uint8_t *)ctl.buf;
    st.c.udp = (const uint8_t *)udp.buf;
    st.c.flags = flags;
    st.start = st.pos = (int64_t)off;
    st.frame = frame;
    st.max_bytes = (int64_t)max_bytes;
    st.max_sel = (int64_t)max_sel;
    st.big = big;
    st.packet_type = packet_type;
    st.limit = limit;
    st.etoff = etoff;
    st.l3off = l3off;
    st.div = div;
    st.tsoff = tsoff;
    result = guarded_walk(walk_pcap, &st);
done:
    PyMem_Free(st.nexts);
    Py_XDECREF(st.list);
    PyBuffer_Release(&buf);
    if (tcp.obj)
        PyBuffer_Release(&tcp);
    if (ctl.obj)
        PyBuffer_Release(&ctl);
    if (udp.obj)
        PyBuffer_Release(&udp);
    return result;
}

/* ---------------------------------------------------------------- pcapng */

static inline int iface_at(const unsigned char *raw, int64_t i, int k)
{
    int32_t v;
    memcpy(&v, raw + ((size_t)i * 2 + (size_t)k) * sizeof(int32_t), sizeof v);
    return (int)v;
}

static int walk_pcapng(scan_t *st)
{
    ctx_t *c = &st->c;
    const uint8_t *b = c->b;
    const int64_t n = c->n;
    const int big = st->big;
    const int64_t nif = st->nif;
    const unsigned char *ifraw = st->ifraw;
    PyObject *tsinfo = st->tsinfo;
    int64_t pos = st->pos;
    long long frame = st->frame;
    int64_t pf = pos;
#define IFACE(i, k) iface_at(ifraw, (i), (k))
    for (;;) {
        uint32_t btype, blen;
        int64_t nxt;
        hit_t h;
        pf = prefetch_to(b, n, pf, pos);
        st->done_pos = pos; /* every record before pos is finished */
        st->done_frame = frame;
        if (pos - st->start >= st->max_bytes) {
            st->reason = STOP_BUDGET;
            break;
        }
        if (pos + 12 > n) {
            st->reason = STOP_NEED_MORE;
            break;
        }
        btype = rd32(b + pos, big);
        blen = rd32(b + pos + 4, big);
        if (btype == PCAPNG_SHB || blen < 12 || blen % 4 || (int64_t)blen > MAX_RECORD) {
            st->reason = STOP_SLOW; /* new section, or a corrupt length: Python */
            break;
        }
        nxt = pos + (int64_t)blen;
        if (nxt > n) {
            st->reason = STOP_NEED_MORE;
            break;
        }
        if (btype == 6 || btype == 2) { /* EPB, obsolete OPB */
            uint32_t v0, ts_hi, ts_lo, incl, orig;
            int64_t ifid;
            if (pos + 28 > n) {
                st->reason = STOP_SLOW;
                break;
            }
            v0 = rd32(b + pos + 8, big);
            ts_hi = rd32(b + pos + 12, big);
            ts_lo = rd32(b + pos + 16, big);
            incl = rd32(b + pos + 20, big);
            orig = rd32(b + pos + 24, big);
            if (btype == 6)
                ifid = v0;
            else
                ifid = big ? (v0 >> 16) : (v0 & 0xFFFF);
            if ((int64_t)incl > (int64_t)blen - 32 || ifid >= nif) {
                st->reason = STOP_SLOW; /* warnings: Python */
                break;
            }
            frame++;
            if (IFACE(ifid, 0) != IFACE_NONE
                && decide(c, pos + 28, (int64_t)incl, IFACE(ifid, 0), IFACE(ifid, 1), &h)) {
                uint64_t ts = ((uint64_t)ts_hi << 32) | ts_lo;
                PyObject *div = NULL, *tsoff = NULL;
                if (ifid >= PyList_GET_SIZE(tsinfo) || !ts_pair(PyList_GET_ITEM(tsinfo, ifid), &div, &tsoff))
                    div = NULL; /* Python decodes it */
                if (emit(st->list, st->nexts, c, pos, nxt, frame, pos + 28, (int64_t)incl, orig, &h, 0, ts, ifid,
                         st->packet_type, div, tsoff) < 0)
                    return -1;
                st->frame = frame;
                if (full(st, nxt))
                    return 0;
            }
        }
        else if (btype == 3) { /* SPB: no timestamp, interface 0 */
            uint32_t orig = rd32(b + pos + 8, big);
            int64_t incl = (int64_t)blen - 16;
            if ((int64_t)orig < incl)
                incl = (int64_t)orig;
            frame++;
            if (nif > 0 && IFACE(0, 0) != IFACE_NONE && decide(c, pos + 12, incl, IFACE(0, 0), IFACE(0, 1), &h)) {
                PyObject *div = NULL, *tsoff = NULL;
                if (PyList_GET_SIZE(tsinfo) < 1 || !ts_pair(PyList_GET_ITEM(tsinfo, 0), &div, &tsoff))
                    div = NULL;
                if (emit(st->list, st->nexts, c, pos, nxt, frame, pos + 12, incl, orig, &h, 0, 0, 0, st->packet_type,
                         div, tsoff) < 0)
                    return -1;
                st->frame = frame;
                if (full(st, nxt))
                    return 0;
            }
        }
        else if (btype == 1) { /* IDB: Python parses it */
            st->reason = STOP_SLOW;
            break;
        }
        pos = nxt;
    }
#undef IFACE
    st->pos = pos;
    st->frame = frame;
    return 0;
}

static PyObject *scan_pcapng(PyObject *self, PyObject *args)
{
    Py_buffer buf = {0}, ifb = {0}, tcp = {0}, ctl = {0}, udp = {0};
    Py_ssize_t off, max_bytes, max_sel;
    int big, flags;
    long long frame;
    PyObject *result = NULL, *packet_type, *tsinfo;
    scan_t st;
    (void)self;

    memset(&st, 0, sizeof st);
    if (!PyArg_ParseTuple(args, "y*npy*Lw*y*y*innOO:scan_pcapng", &buf, &off, &big, &ifb, &frame, &tcp, &ctl, &udp,
                          &flags, &max_bytes, &max_sel, &packet_type, &tsinfo))
        return NULL;
    if (check_maps(&tcp, &ctl, &udp) < 0 || check_common(off, max_bytes, max_sel) < 0
        || check_packet_type(packet_type) < 0)
        goto done;
    if (!PyList_Check(tsinfo)) {
        PyErr_SetString(PyExc_TypeError, "tsinfo must be a list of (divisor, offset) pairs");
        goto done;
    }
    st.nexts = PyMem_Malloc((size_t)max_sel * sizeof(int64_t));
    if (st.nexts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (ifb.len % (Py_ssize_t)(2 * sizeof(int32_t))) {
        PyErr_SetString(PyExc_ValueError, "interface table must hold pairs of int32");
        goto done;
    }
    st.list = PyList_New(0);
    if (st.list == NULL)
        goto done;
    st.c.b = (const uint8_t *)buf.buf;
    st.c.n = (int64_t)buf.len;
    st.c.tcp = (uint8_t *)tcp.buf;
    st.c.ctl = (const uint8_t *)ctl.buf;
    st.c.udp = (const uint8_t *)udp.buf;
    st.c.flags = flags;
    st.start = st.pos = (int64_t)off;
    st.frame = frame;
    st.max_bytes = (int64_t)max_bytes;
    st.max_sel = (int64_t)max_sel;
    st.big = big;
    st.packet_type = packet_type;
    st.nif = (int64_t)(ifb.len / (Py_ssize_t)(2 * sizeof(int32_t)));
    st.ifraw = (const unsigned char *)ifb.buf;
    st.tsinfo = tsinfo;
    result = guarded_walk(walk_pcapng, &st);
done:
    PyMem_Free(st.nexts);
    Py_XDECREF(st.list);
    PyBuffer_Release(&buf);
    if (ifb.obj)
        PyBuffer_Release(&ifb);
    if (tcp.obj)
        PyBuffer_Release(&tcp);
    if (ctl.obj)
        PyBuffer_Release(&ctl);
    if (udp.obj)
        PyBuffer_Release(&udp);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_pcap", scan_pcap, METH_VARARGS, "Select the records of a classic pcap buffer (see the module source)."},
    {"scan_pcapng", scan_pcapng, METH_VARARGS, "Select the packet blocks of a pcapng buffer (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dissect.port902._fastscan",
    "C fast path of dissect.port902.capture: record walking and packet selection.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastscan(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0
        || PyModule_AddIntConstant(m, "STOP_NEED_MORE", STOP_NEED_MORE) < 0
        || PyModule_AddIntConstant(m, "STOP_BUDGET", STOP_BUDGET) < 0
        || PyModule_AddIntConstant(m, "STOP_FULL", STOP_FULL) < 0
        || PyModule_AddIntConstant(m, "STOP_SLOW", STOP_SLOW) < 0
        || PyModule_AddIntConstant(m, "STOP_FAULT", STOP_FAULT) < 0
        || PyModule_AddIntConstant(m, "F_ICMP", F_ICMP) < 0
        || PyModule_AddIntConstant(m, "F_GREET", F_GREET) < 0
        || PyModule_AddIntConstant(m, "F_UDP", F_UDP) < 0
        || PyModule_AddIntConstant(m, "F_DECODE", F_DECODE) < 0
        || PyModule_AddIntConstant(m, "IFACE_NONE", IFACE_NONE) < 0
        || PyModule_AddIntConstant(m, "CONTROL_TCP_FLAGS", CTL_FLAGS) < 0
        ) {
        Py_DECREF(m);
        return NULL;
    }
    {
        PyObject *g = PyBytes_FromStringAndSize((const char *)GREETING, (Py_ssize_t)GREETING_LEN);
        int rc = g == NULL ? -1 : PyModule_AddObjectRef(m, "GREETING", g);
        Py_XDECREF(g);
        if (rc < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    {
        PyObject *g = PyBytes_FromStringAndSize((const char *)CTL_FIRST, (Py_ssize_t)(sizeof(CTL_FIRST) - 1));
        int rc = g == NULL ? -1 : PyModule_AddObjectRef(m, "CONTROL_FIRST_BYTES", g);
        Py_XDECREF(g);
        if (rc < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    {
        PyObject *g = PyBytes_FromStringAndSize((const char *)RFB_GREETING, (Py_ssize_t)RFB_GREETING_LEN);
        int rc = g == NULL ? -1 : PyModule_AddObjectRef(m, "RFB_GREETING", g);
        Py_XDECREF(g);
        if (rc < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
