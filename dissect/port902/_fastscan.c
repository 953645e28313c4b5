/*
 * _fastscan: the per-record filter of dissect/port902/capture.py, in C.
 *
 * It walks the records of a capture held in a bytes-like buffer (bytes, or an mmap of
 * the file) from a given offset and returns only the records that the pure-Python
 * decoder (CaptureReader._decoder) would keep, as small tuples that Python then decodes
 * in full (CaptureReader._full_decode).  An uninteresting record costs a few integer
 * operations and creates no Python object.
 *
 * The selection rules are a line-by-line transcription of the Python decoder,
 * including its quirks: reads that the Python code does not bound by the end of the
 * record are bounded here, like there, by the end of the buffer only (Python's
 * IndexError / struct.error -> "not selected").  Every read is checked against the
 * buffer length; every loop advances by at least 8 bytes, so hostile input can neither
 * read out of bounds nor loop forever.
 *
 * Whatever is unusual (a corrupt record length, a pcapng section or interface block, a
 * packet block that needs a warning) is not handled here: the scanner stops at that
 * record with STOP_SLOW and Python handles it with the same code as the pure path, so
 * warnings cannot drift between the two engines.
 *
 *   scan_pcap(buf, off, big_endian, limit, etoff, l3off, frame,
 *             tcp_map, ctl_map, udp_map, flags, max_bytes, max_selected)
 *   scan_pcapng(buf, off, big_endian, ifaces, frame,
 *               tcp_map, ctl_map, udp_map, flags, max_bytes, max_selected)
 *       -> (off, frame, reason, [entry, ...])
 *
 *   entry = (rec_off, next_off, frame, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b,
 *            ifid, greeting_port or -1)
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
#include <stdint.h>
#include <string.h>

#define API_VERSION 1

enum { STOP_NEED_MORE = 0, STOP_BUDGET = 1, STOP_FULL = 2, STOP_SLOW = 3 };

#define F_ICMP 1
#define F_GREET 2
#define F_UDP 4
#define F_DECODE 8

#define IFACE_NONE (-32768)
#define PORT_MAP_SIZE 65536
#define MAX_RECORD ((int64_t)256 << 20)
#define PCAPNG_SHB 0x0A0D0D0Au

static const unsigned char GREETING[] = "220 VMware Authentication Daemon";
#define GREETING_LEN ((int64_t)(sizeof(GREETING) - 1))

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
            else if (!((c->ctl[sp] || c->ctl[dp])
                       && ((b[l4 + 13] & 0x07) || first == 0x16 || first == 0x47)))
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

/* ---------------------------------------------------------------- classic pcap */

static PyObject *scan_pcap(PyObject *self, PyObject *args)
{
    Py_buffer buf = {0}, tcp = {0}, ctl = {0}, udp = {0};
    Py_ssize_t off, max_bytes, max_sel;
    int big, etoff, l3off, flags;
    long long limit, frame;
    PyObject *list = NULL, *result = NULL;
    int reason = STOP_NEED_MORE;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*npLiiLw*y*y*inn:scan_pcap", &buf, &off, &big, &limit, &etoff, &l3off, &frame,
                          &tcp, &ctl, &udp, &flags, &max_bytes, &max_sel))
        return NULL;
    if (check_maps(&tcp, &ctl, &udp) < 0 || check_common(off, max_bytes, max_sel) < 0)
        goto done;
    if (etoff > 0xFFFF || etoff < -1 || l3off < 0 || l3off > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "bad link layout");
        goto done;
    }
    list = PyList_New(0);
    if (list == NULL)
        goto done;
    {
        ctx_t c;
        const uint8_t *b = (const uint8_t *)buf.buf;
        const int64_t n = (int64_t)buf.len;
        int64_t pos = (int64_t)off;
        const int64_t start = pos;
        int64_t pf = pos;
        c.b = b;
        c.n = n;
        c.tcp = (uint8_t *)tcp.buf;
        c.ctl = (const uint8_t *)ctl.buf;
        c.udp = (const uint8_t *)udp.buf;
        c.flags = flags;
        for (;;) {
            uint32_t ts_s, ts_f, incl, orig;
            pf = prefetch_to(b, n, pf, pos);
            int64_t nxt;
            hit_t h;
            if (pos - start >= (int64_t)max_bytes) {
                reason = STOP_BUDGET;
                break;
            }
            if (pos + 16 > n) {
                reason = STOP_NEED_MORE;
                break;
            }
            ts_s = rd32(b + pos, big);
            ts_f = rd32(b + pos + 4, big);
            incl = rd32(b + pos + 8, big);
            orig = rd32(b + pos + 12, big);
            if ((long long)incl > limit) {
                reason = STOP_SLOW; /* corrupt record: Python warns and stops */
                break;
            }
            nxt = pos + 16 + (int64_t)incl;
            if (nxt > n) {
                reason = STOP_NEED_MORE;
                break;
            }
            frame++;
            if ((flags & F_DECODE) && decide(&c, pos + 16, (int64_t)incl, etoff, l3off, &h)) {
                if (add_entry(list, pos, nxt, frame, pos + 16, (int64_t)incl, orig, &h, ts_s, ts_f, -1) < 0)
                    goto done;
                if (PyList_GET_SIZE(list) >= max_sel) {
                    pos = nxt;
                    reason = STOP_FULL;
                    break;
                }
            }
            pos = nxt;
        }
        result = Py_BuildValue("(LLiO)", (long long)pos, frame, reason, list);
    }
done:
    Py_XDECREF(list);
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

static PyObject *scan_pcapng(PyObject *self, PyObject *args)
{
    Py_buffer buf = {0}, ifb = {0}, tcp = {0}, ctl = {0}, udp = {0};
    Py_ssize_t off, max_bytes, max_sel;
    int big, flags;
    long long frame;
    PyObject *list = NULL, *result = NULL;
    int reason = STOP_NEED_MORE;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*npy*Lw*y*y*inn:scan_pcapng", &buf, &off, &big, &ifb, &frame, &tcp, &ctl, &udp,
                          &flags, &max_bytes, &max_sel))
        return NULL;
    if (check_maps(&tcp, &ctl, &udp) < 0 || check_common(off, max_bytes, max_sel) < 0)
        goto done;
    if (ifb.len % (Py_ssize_t)(2 * sizeof(int32_t))) {
        PyErr_SetString(PyExc_ValueError, "interface table must hold pairs of int32");
        goto done;
    }
    list = PyList_New(0);
    if (list == NULL)
        goto done;
    {
        ctx_t c;
        const uint8_t *b = (const uint8_t *)buf.buf;
        const int64_t n = (int64_t)buf.len;
        const int64_t nif = (int64_t)(ifb.len / (Py_ssize_t)(2 * sizeof(int32_t)));
        const unsigned char *ifraw = (const unsigned char *)ifb.buf;
        int64_t pos = (int64_t)off;
        const int64_t start = pos;
        int64_t pf = pos;
        c.b = b;
        c.n = n;
        c.tcp = (uint8_t *)tcp.buf;
        c.ctl = (const uint8_t *)ctl.buf;
        c.udp = (const uint8_t *)udp.buf;
        c.flags = flags;
#define IFACE(i, k) iface_at(ifraw, (i), (k))
        for (;;) {
            uint32_t btype, blen;
            pf = prefetch_to(b, n, pf, pos);
            int64_t nxt;
            hit_t h;
            if (pos - start >= (int64_t)max_bytes) {
                reason = STOP_BUDGET;
                break;
            }
            if (pos + 12 > n) {
                reason = STOP_NEED_MORE;
                break;
            }
            btype = rd32(b + pos, big);
            blen = rd32(b + pos + 4, big);
            if (btype == PCAPNG_SHB || blen < 12 || blen % 4 || (int64_t)blen > MAX_RECORD) {
                reason = STOP_SLOW; /* new section, or a corrupt length: Python */
                break;
            }
            nxt = pos + (int64_t)blen;
            if (nxt > n) {
                reason = STOP_NEED_MORE;
                break;
            }
            if (btype == 6 || btype == 2) { /* EPB, obsolete OPB */
                uint32_t v0, ts_hi, ts_lo, incl, orig;
                int64_t ifid;
                if (pos + 28 > n) {
                    reason = STOP_SLOW;
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
                    reason = STOP_SLOW; /* warnings: Python */
                    break;
                }
                frame++;
                if (IFACE(ifid, 0) != IFACE_NONE
                    && decide(&c, pos + 28, (int64_t)incl, IFACE(ifid, 0), IFACE(ifid, 1), &h)) {
                    uint64_t ts = ((uint64_t)ts_hi << 32) | ts_lo;
                    if (add_entry(list, pos, nxt, frame, pos + 28, (int64_t)incl, orig, &h, 0, ts, ifid) < 0)
                        goto done;
                    if (PyList_GET_SIZE(list) >= max_sel) {
                        pos = nxt;
                        reason = STOP_FULL;
                        break;
                    }
                }
            }
            else if (btype == 3) { /* SPB: no timestamp, interface 0 */
                uint32_t orig = rd32(b + pos + 8, big);
                int64_t incl = (int64_t)blen - 16;
                if ((int64_t)orig < incl)
                    incl = (int64_t)orig;
                frame++;
                if (nif > 0 && IFACE(0, 0) != IFACE_NONE
                    && decide(&c, pos + 12, incl, IFACE(0, 0), IFACE(0, 1), &h)) {
                    if (add_entry(list, pos, nxt, frame, pos + 12, incl, orig, &h, 0, 0, 0) < 0)
                        goto done;
                    if (PyList_GET_SIZE(list) >= max_sel) {
                        pos = nxt;
                        reason = STOP_FULL;
                        break;
                    }
                }
            }
            else if (btype == 1) { /* IDB: Python parses it */
                reason = STOP_SLOW;
                break;
            }
            pos = nxt;
        }
#undef IFACE
        result = Py_BuildValue("(LLiO)", (long long)pos, frame, reason, list);
    }
done:
    Py_XDECREF(list);
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
        || PyModule_AddIntConstant(m, "F_ICMP", F_ICMP) < 0
        || PyModule_AddIntConstant(m, "F_GREET", F_GREET) < 0
        || PyModule_AddIntConstant(m, "F_UDP", F_UDP) < 0
        || PyModule_AddIntConstant(m, "F_DECODE", F_DECODE) < 0
        || PyModule_AddIntConstant(m, "IFACE_NONE", IFACE_NONE) < 0
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
    return m;
}
