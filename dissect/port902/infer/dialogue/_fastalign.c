/*
 * _fastalign: the two dynamic programmes of dissect/port902/infer/dialogue/align.py, in C.
 *
 * align.py stays the definition: this is a line-by-line transcription of _client_align
 * (Viterbi over a template's NFA) and _server_align (the banded reply alignment), with the
 * same floating-point operations in the same order (so the same scores, bit for bit) and
 * the same tie-breaking (a state keeps its first best; Python dicts iterate in insertion
 * order, which is tracked here too).  Python keeps the objects (templates, tokens): it passes
 * numbers in and turns the indices that come back into its own tuples.
 *
 * Size models, as align.py's _c_model builds them:
 *   (0, lo, hi, exact tuple, p_exact, log)   -- grammar.Size
 *   (1, a, b, p)                             -- align._Mix of two Size models
 *
 *   program(states, exps) -> capsule
 *       states: per NFA state (index 0 = the start): (split, can_end, first exp, exp count)
 *       exps:   per expansion: (next state, cost, edge, (size model, ...))
 *   client_align(program, lo, hi, run, garbage, continued)
 *       -> None | (score, [(from state, code), ...]); code -1 garbage, -2 continued,
 *          else the expansion's index within its state's
 *   server_align(replies, lo, hi, run, ts, garbage, ticket, tls13, constants)
 *       replies: per reply: ((size model, ...), (split flag, ...), ts)
 *       constants: (BAND, MAX_TICKETS, PER_RECORD_TOKENS, SKIPPED, MISSING, SHARED)
 *       -> None | (score, [None | (kind, first reply, end reply, choice[, last record])], end reply)
 *          kind 0 garbage, 1 ticket, 2 reply (choice: index in the product of alternatives,
 *          first reply's alternative most significant), 3 span (choice: the alternative)
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define API_VERSION 1
#define MAX_EXACT 16

typedef struct {
    int mix;
    long lo, hi;
    int nexact;
    long exact[MAX_EXACT];
    double p_exact;
    int log;
    long bmin, bmax; /* support: no mass outside (Size.bounds) */
    int a, b;        /* mix: indices of the two Size models */
    double p;
} Model;

typedef struct {
    Model *v;
    Py_ssize_t n, cap;
} Pool;

static int pool_add(Pool *pool, Model *m) {
    if (pool->n == pool->cap) {
        Py_ssize_t cap = pool->cap ? pool->cap * 2 : 16;
        Model *v = realloc(pool->v, (size_t)cap * sizeof(Model));
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        pool->v = v;
        pool->cap = cap;
    }
    pool->v[pool->n] = *m;
    return (int)pool->n++;
}

/* a Python size model -> its index in the pool, -1 with an exception */
static int model_from(Pool *pool, PyObject *obj) {
    Model m;
    memset(&m, 0, sizeof m);
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) < 4) {
        PyErr_SetString(PyExc_TypeError, "size model: a tuple");
        return -1;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(obj, 0));
    if (kind == -1 && PyErr_Occurred())
        return -1;
    if (kind == 1) {
        int a = model_from(pool, PyTuple_GET_ITEM(obj, 1));
        if (a < 0)
            return -1;
        int b = model_from(pool, PyTuple_GET_ITEM(obj, 2));
        if (b < 0)
            return -1;
        m.mix = 1;
        m.a = a;
        m.b = b;
        m.p = PyFloat_AsDouble(PyTuple_GET_ITEM(obj, 3));
        if (m.p == -1.0 && PyErr_Occurred())
            return -1;
        Model *ma = &pool->v[a], *mb = &pool->v[b];
        m.bmin = ma->bmin < mb->bmin ? ma->bmin : mb->bmin;
        m.bmax = ma->bmax > mb->bmax ? ma->bmax : mb->bmax;
        return pool_add(pool, &m);
    }
    if (PyTuple_GET_SIZE(obj) != 6) {
        PyErr_SetString(PyExc_TypeError, "size model: (0, lo, hi, exact, p_exact, log)");
        return -1;
    }
    m.lo = PyLong_AsLong(PyTuple_GET_ITEM(obj, 1));
    m.hi = PyLong_AsLong(PyTuple_GET_ITEM(obj, 2));
    PyObject *ex = PyTuple_GET_ITEM(obj, 3);
    m.p_exact = PyFloat_AsDouble(PyTuple_GET_ITEM(obj, 4));
    m.log = PyObject_IsTrue(PyTuple_GET_ITEM(obj, 5));
    if (PyErr_Occurred())
        return -1;
    if (!PyTuple_Check(ex) || PyTuple_GET_SIZE(ex) > MAX_EXACT) {
        PyErr_SetString(PyExc_ValueError, "size model: too many exact sizes");
        return -1;
    }
    m.nexact = (int)PyTuple_GET_SIZE(ex);
    m.bmin = m.lo;
    m.bmax = m.hi;
    for (int i = 0; i < m.nexact; i++) {
        m.exact[i] = PyLong_AsLong(PyTuple_GET_ITEM(ex, i));
        if (m.exact[i] == -1 && PyErr_Occurred())
            return -1;
        if (m.exact[i] < m.bmin)
            m.bmin = m.exact[i];
        if (m.exact[i] > m.bmax)
            m.bmax = m.exact[i];
    }
    return pool_add(pool, &m);
}

/* grammar.Size.mass of the Size shifted by ``by`` */
static double size_mass(const Model *s, long by, long ol, long oh) {
    double p = 0.0;
    long slo = s->lo + by, shi = s->hi + by;
    if (s->nexact) {
        long hits = 0;
        for (int i = 0; i < s->nexact; i++) {
            long v = s->exact[i] + by;
            if (ol <= v && v <= oh)
                hits++;
        }
        p += s->p_exact * (double)hits / (double)s->nexact;
    }
    double rest = s->nexact ? 1.0 - s->p_exact : 1.0;
    long lo = ol > slo ? ol : slo, hi = oh < shi ? oh : shi;
    if (rest > 0 && lo <= hi) {
        if (s->log) {
            long a = slo > 1 ? slo : 1, b = shi + 1;
            p += rest * log((double)(hi + 1) / (double)(lo > 1 ? lo : 1)) / log((double)b / (double)a);
        } else {
            p += rest * (double)(hi - lo + 1) / (double)(shi - slo + 1);
        }
    }
    return p;
}

static double mass(const Pool *pool, const Model *s, long ol, long oh) {
    if (s->mix)
        return s->p * mass(pool, &pool->v[s->a], ol, oh) + (1 - s->p) * mass(pool, &pool->v[s->b], ol, oh);
    return size_mass(s, 0, ol, oh);
}

static double logp(double p) { return p > 0 ? log(p) : -INFINITY; }

/* grammar._loglik_cached over Size models (a mix stands for its first part, as in
   align._mixed_loglik, except when it is the only line) */
static double loglik(const Pool *pool, const int *idx, int n, long ol, long oh) {
    if (n == 1)
        return logp(mass(pool, &pool->v[idx[0]], ol, oh));
    long fixed = 0, flo = 0, fhi = 0;
    int nfree = 0;
    const Model *free1 = NULL;
    for (int i = 0; i < n; i++) {
        const Model *s = &pool->v[idx[i]];
        if (s->mix)
            s = &pool->v[s->a];
        if (s->nexact && s->p_exact >= 1.0) {
            fixed += s->exact[0];
        } else {
            nfree++;
            free1 = s;
            flo += s->lo;
            fhi += s->hi;
        }
    }
    double p;
    if (nfree == 0) {
        p = (ol <= fixed && fixed <= oh) ? 1.0 : 0.0;
    } else if (nfree == 1) {
        p = size_mass(free1, fixed, ol, oh);
    } else {
        long lo = fixed + flo, hi = fixed + fhi;
        long a = ol > lo ? ol : lo, b = oh < hi ? oh : hi;
        p = a <= b ? 1.0 * (double)(b - a + 1) / (double)(hi - lo + 1) : 0.0;
    }
    return logp(p);
}

/* -- helpers ------------------------------------------------------------------------------ */

static int longs_from(PyObject *seq, Py_ssize_t n, long *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsLong(PyList_GET_ITEM(seq, i));
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static int doubles_from(PyObject *seq, Py_ssize_t n, double *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(PyList_GET_ITEM(seq, i));
        if (out[i] == -1.0 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* -- the client programme ------------------------------------------------------------------ */

typedef struct {
    int ns;
    double cost, edge;
    int first, count; /* model indices in prog->idx */
} Exp;

typedef struct {
    int nstates;
    int *split, *can_end, *first, *count;
    Exp *exps;
    int nexps;
    int *idx;
    Pool pool;
} Program;

static void program_free(Program *p) {
    if (!p)
        return;
    free(p->split);
    free(p->can_end);
    free(p->first);
    free(p->count);
    free(p->exps);
    free(p->idx);
    free(p->pool.v);
    free(p);
}

static void program_capsule_free(PyObject *cap) {
    program_free((Program *)PyCapsule_GetPointer(cap, "dissect902.align.program"));
}

static PyObject *py_program(PyObject *self, PyObject *args) {
    PyObject *states, *exps;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &states, &PyList_Type, &exps))
        return NULL;
    Program *p = calloc(1, sizeof(Program));
    if (!p)
        return PyErr_NoMemory();
    Py_ssize_t ns = PyList_GET_SIZE(states), ne = PyList_GET_SIZE(exps);
    p->nstates = (int)ns;
    p->nexps = (int)ne;
    p->split = calloc((size_t)ns + 1, sizeof(int));
    p->can_end = calloc((size_t)ns + 1, sizeof(int));
    p->first = calloc((size_t)ns + 1, sizeof(int));
    p->count = calloc((size_t)ns + 1, sizeof(int));
    p->exps = calloc((size_t)ne + 1, sizeof(Exp));
    Py_ssize_t nidx = 0;
    for (Py_ssize_t e = 0; e < ne; e++) {
        PyObject *it = PyList_GET_ITEM(exps, e);
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(it, 3))) {
            PyErr_SetString(PyExc_TypeError, "expansion: (next state, cost, edge, models)");
            goto fail;
        }
        nidx += PyTuple_GET_SIZE(PyTuple_GET_ITEM(it, 3));
    }
    p->idx = calloc((size_t)nidx + 1, sizeof(int));
    if (!p->split || !p->can_end || !p->first || !p->count || !p->exps || !p->idx) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t s = 0; s < ns; s++) {
        PyObject *it = PyList_GET_ITEM(states, s);
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 4) {
            PyErr_SetString(PyExc_TypeError, "state: (split, can_end, first, count)");
            goto fail;
        }
        p->split[s] = (int)PyLong_AsLong(PyTuple_GET_ITEM(it, 0));
        p->can_end[s] = (int)PyLong_AsLong(PyTuple_GET_ITEM(it, 1));
        p->first[s] = (int)PyLong_AsLong(PyTuple_GET_ITEM(it, 2));
        p->count[s] = (int)PyLong_AsLong(PyTuple_GET_ITEM(it, 3));
        if (PyErr_Occurred())
            goto fail;
        if (p->first[s] < 0 || p->count[s] < 0 || p->first[s] + p->count[s] > ne) {
            PyErr_SetString(PyExc_ValueError, "state: expansions out of range");
            goto fail;
        }
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t e = 0; e < ne; e++) {
        PyObject *it = PyList_GET_ITEM(exps, e);
        Exp *x = &p->exps[e];
        x->ns = (int)PyLong_AsLong(PyTuple_GET_ITEM(it, 0));
        x->cost = PyFloat_AsDouble(PyTuple_GET_ITEM(it, 1));
        x->edge = PyFloat_AsDouble(PyTuple_GET_ITEM(it, 2));
        if (PyErr_Occurred())
            goto fail;
        if (x->ns < 0 || x->ns >= ns) {
            PyErr_SetString(PyExc_ValueError, "expansion: next state out of range");
            goto fail;
        }
        PyObject *models = PyTuple_GET_ITEM(it, 3);
        x->first = (int)k;
        x->count = (int)PyTuple_GET_SIZE(models);
        for (Py_ssize_t i = 0; i < x->count; i++) {
            int m = model_from(&p->pool, PyTuple_GET_ITEM(models, i));
            if (m < 0)
                goto fail;
            p->idx[k++] = m;
        }
    }
    PyObject *cap = PyCapsule_New(p, "dissect902.align.program", program_capsule_free);
    if (!cap)
        goto fail;
    return cap;
fail:
    program_free(p);
    return NULL;
}

static PyObject *py_client_align(PyObject *self, PyObject *args) {
    PyObject *cap, *lo_l, *hi_l, *run_l, *garb_l;
    double continued;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!d", &cap, &PyList_Type, &lo_l, &PyList_Type, &hi_l, &PyList_Type, &run_l,
                          &PyList_Type, &garb_l, &continued))
        return NULL;
    Program *p = PyCapsule_GetPointer(cap, "dissect902.align.program");
    if (!p)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lo_l);
    if (PyList_GET_SIZE(hi_l) != n || PyList_GET_SIZE(run_l) != n || PyList_GET_SIZE(garb_l) != n) {
        PyErr_SetString(PyExc_ValueError, "client_align: lists of unequal length");
        return NULL;
    }
    int S = p->nstates;
    size_t cells = (size_t)(n + 1) * (size_t)S;
    long *lo = malloc(sizeof(long) * ((size_t)n + 1)), *hi = malloc(sizeof(long) * ((size_t)n + 1));
    long *run = malloc(sizeof(long) * ((size_t)n + 1));
    double *garb = malloc(sizeof(double) * ((size_t)n + 1));
    double *score = malloc(sizeof(double) * cells);
    char *present = calloc(cells, 1);
    int *back_s = malloc(sizeof(int) * cells), *back_c = malloc(sizeof(int) * cells);
    int *order = malloc(sizeof(int) * cells), *norder = calloc((size_t)n + 1, sizeof(int));
    PyObject *result = NULL;
    if (!lo || !hi || !run || !garb || !score || !present || !back_s || !back_c || !order || !norder) {
        PyErr_NoMemory();
        goto done;
    }
    if (longs_from(lo_l, n, lo) || longs_from(hi_l, n, hi) || longs_from(run_l, n, run) ||
        doubles_from(garb_l, n, garb))
        goto done;
    /* row r: the states after r records; row 0 holds the start */
    present[0] = 1;
    score[0] = 0.0;
    order[0] = 0;
    norder[0] = 1;
    for (Py_ssize_t r = 0; r < n; r++) {
        size_t cur = (size_t)r * S, nxt = (size_t)(r + 1) * S;
        int same_run = r > 0 && run[r - 1] == run[r];
        long olo = lo[r], ohi = hi[r];
#define OFFER(NS, SC, FROM, CODE)                                                                \
    do {                                                                                         \
        size_t c_ = nxt + (size_t)(NS);                                                          \
        double sc_ = (SC);                                                                       \
        if (!present[c_]) {                                                                      \
            if (sc_ > -INFINITY) {                                                               \
                present[c_] = 1;                                                                 \
                order[nxt + norder[r + 1]++] = (NS);                                             \
                score[c_] = sc_;                                                                 \
                back_s[c_] = (FROM);                                                             \
                back_c[c_] = (CODE);                                                             \
            }                                                                                    \
        } else if (sc_ > score[c_]) {                                                            \
            score[c_] = sc_;                                                                     \
            back_s[c_] = (FROM);                                                                 \
            back_c[c_] = (CODE);                                                                 \
        }                                                                                        \
    } while (0)
        for (int q = 0; q < norder[r]; q++) {
            int s = order[cur + q];
            double sc = score[cur + s];
            OFFER(s, sc + garb[r], s, -1);
            if (s != 0 && same_run && p->split[s])
                OFFER(s, sc + continued, s, -2);
            for (int e = 0; e < p->count[s]; e++) {
                const Exp *x = &p->exps[p->first[s] + e];
                double ll = loglik(&p->pool, &p->idx[x->first], x->count, olo, ohi);
                if (ll > -INFINITY)
                    OFFER(x->ns, sc + x->cost + x->edge + ll, s, e);
            }
        }
#undef OFFER
    }
    /* the best end state: the highest score, then the highest state (Python's max of (score, state)) */
    size_t last = (size_t)n * S;
    int best = -1;
    for (int q = 0; q < norder[n]; q++) {
        int s = order[last + q];
        if (s == 0 || !p->can_end[s])
            continue;
        if (best < 0 || score[last + s] > score[last + best] || (score[last + s] == score[last + best] && s > best))
            best = s;
    }
    if (best < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *path = PyList_New(n);
    if (!path)
        goto done;
    int state = best;
    for (Py_ssize_t r = n; r > 0; r--) {
        size_t c = (size_t)r * S + (size_t)state;
        PyObject *step = Py_BuildValue("(ii)", back_s[c], back_c[c]);
        if (!step) {
            Py_DECREF(path);
            goto done;
        }
        PyList_SET_ITEM(path, r - 1, step);
        state = back_s[c];
    }
    result = Py_BuildValue("(dN)", score[last + best], path);
done:
    free(lo);
    free(hi);
    free(run);
    free(garb);
    free(score);
    free(present);
    free(back_s);
    free(back_c);
    free(order);
    free(norder);
    return result;
}

/* -- the server alignment ------------------------------------------------------------------ */

typedef struct {
    double score;
    long stamp; /* when the cell was first set: Python's dict insertion order */
    int present;
    int pj, pi, kind, choice, e; /* kind: 0 garbage, 1 ticket, 2 reply, 3 span, 4 skip */
} Cell;

typedef struct {
    int nalt;
    int first; /* index of its first alternative in alt_model / alt_split */
    double ts;
} Reply;

typedef struct {
    int ready;
    int nways;
    double latest[4];
    double least[4];
    int nchoice[4];
    int *models[4];   /* per way: nchoice * k model indices */
    long *support[4]; /* per way: nchoice pairs (lo, hi) */
} Carry;

static void carry_free(Carry *c, int m) {
    if (!c)
        return;
    for (int i = 0; i < m; i++)
        for (int k = 0; k < 4; k++) {
            free(c[i].models[k]);
            free(c[i].support[k]);
        }
    free(c);
}

/* align._carry: k = 1.. replies from i on, every choice of alternatives (the first reply's
   alternative most significant), the latest reply time, the least size, each choice's support */
static int carry_build(Carry *c, const Reply *rep, const int *alt_model, const Pool *pool, int m, int i, int per) {
    int end = i + per < m ? i + per : m;
    c->nways = end - i;
    for (int x = i; x < end; x++) {
        int k = x - i + 1, nchoice = 1;
        double latest = rep[i].ts;
        for (int y = i; y <= x; y++) {
            nchoice *= rep[y].nalt;
            if (rep[y].ts > latest)
                latest = rep[y].ts;
        }
        c->latest[k - 1] = latest;
        c->nchoice[k - 1] = nchoice;
        c->models[k - 1] = malloc(sizeof(int) * (size_t)(nchoice * k + 1));
        c->support[k - 1] = malloc(sizeof(long) * (size_t)(nchoice * 2 + 1));
        if (!c->models[k - 1] || !c->support[k - 1]) {
            PyErr_NoMemory();
            return -1;
        }
        double least = INFINITY;
        for (int ch = 0; ch < nchoice; ch++) {
            int rem = ch;
            long blo = 0, bhi = 0;
            for (int y = x; y >= i; y--) { /* the last reply's alternative varies fastest */
                int a = rem % rep[y].nalt;
                rem /= rep[y].nalt;
                int mi = alt_model[rep[y].first + a];
                c->models[k - 1][ch * k + (y - i)] = mi;
                blo += pool->v[mi].bmin;
                bhi += pool->v[mi].bmax;
            }
            c->support[k - 1][2 * ch] = blo;
            c->support[k - 1][2 * ch + 1] = bhi;
            if ((double)blo < least)
                least = (double)blo;
        }
        c->least[k - 1] = least;
    }
    c->ready = 1;
    return 0;
}

static double mixed_loglik(const Pool *pool, const int *idx, int n, long ol, long oh) {
    return loglik(pool, idx, n, ol, oh); /* a lone mix is its mass; in a shared record, its first part */
}

static PyObject *py_server_align(PyObject *self, PyObject *args) {
    PyObject *replies_l, *lo_l, *hi_l, *run_l, *ts_l, *garb_l, *tick_l;
    int tls13, band, max_tickets, per;
    double skipped, missing, shared;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!p(iiiddd)", &PyList_Type, &replies_l, &PyList_Type, &lo_l, &PyList_Type,
                          &hi_l, &PyList_Type, &run_l, &PyList_Type, &ts_l, &PyList_Type, &garb_l, &PyList_Type, &tick_l,
                          &tls13, &band, &max_tickets, &per, &skipped, &missing, &shared))
        return NULL;
    if (per < 1 || per > 4) {
        PyErr_SetString(PyExc_ValueError, "server_align: PER_RECORD_TOKENS out of range");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(lo_l), m = PyList_GET_SIZE(replies_l);
    if (PyList_GET_SIZE(hi_l) != n || PyList_GET_SIZE(run_l) != n || PyList_GET_SIZE(ts_l) != n ||
        PyList_GET_SIZE(garb_l) != n || PyList_GET_SIZE(tick_l) != n) {
        PyErr_SetString(PyExc_ValueError, "server_align: lists of unequal length");
        return NULL;
    }
    Pool pool = {0};
    Reply *rep = calloc((size_t)m + 1, sizeof(Reply));
    int nalts = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *r = PyList_GET_ITEM(replies_l, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(r, 0)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(r, 1))) {
            free(rep);
            PyErr_SetString(PyExc_TypeError, "reply: (models, split flags, ts)");
            return NULL;
        }
        nalts += (int)PyTuple_GET_SIZE(PyTuple_GET_ITEM(r, 0));
    }
    int *alt_model = malloc(sizeof(int) * ((size_t)nalts + 1));
    char *alt_split = malloc((size_t)nalts + 1);
    char *splits = calloc((size_t)m + 1, 1);
    long *lo = malloc(sizeof(long) * ((size_t)n + 1)), *hi = malloc(sizeof(long) * ((size_t)n + 1));
    long *run = malloc(sizeof(long) * ((size_t)n + 1)), *unit = malloc(sizeof(long) * ((size_t)n + 1));
    double *ts = malloc(sizeof(double) * ((size_t)n + 1)), *garb = malloc(sizeof(double) * ((size_t)n + 1));
    double *tick = malloc(sizeof(double) * ((size_t)n + 1));
    Cell *best = calloc((size_t)(n + 1) * (size_t)(m + 1), sizeof(Cell));
    Carry *carry = calloc((size_t)m + 1, sizeof(Carry));
    PyObject *result = NULL;
    long stamp = 0;
    if (!rep || !alt_model || !alt_split || !splits || !lo || !hi || !run || !unit || !ts || !garb || !tick || !best ||
        !carry) {
        PyErr_NoMemory();
        goto done;
    }
    int k0 = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *r = PyList_GET_ITEM(replies_l, i);
        PyObject *models = PyTuple_GET_ITEM(r, 0), *flags = PyTuple_GET_ITEM(r, 1);
        rep[i].nalt = (int)PyTuple_GET_SIZE(models);
        rep[i].first = k0;
        rep[i].ts = PyFloat_AsDouble(PyTuple_GET_ITEM(r, 2));
        if ((rep[i].ts == -1.0 && PyErr_Occurred()) || PyTuple_GET_SIZE(flags) != rep[i].nalt || rep[i].nalt < 1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "reply: one split flag per alternative, at least one");
            goto done;
        }
        for (int a = 0; a < rep[i].nalt; a++) {
            int mi = model_from(&pool, PyTuple_GET_ITEM(models, a));
            if (mi < 0)
                goto done;
            alt_model[k0] = mi;
            alt_split[k0] = (char)PyObject_IsTrue(PyTuple_GET_ITEM(flags, a));
            if (alt_split[k0])
                splits[i] = 1;
            k0++;
        }
    }
    if (longs_from(lo_l, n, lo) || longs_from(hi_l, n, hi) || longs_from(run_l, n, run) || doubles_from(ts_l, n, ts) ||
        doubles_from(garb_l, n, garb) || doubles_from(tick_l, n, tick))
        goto done;
    long runs = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (j == 0 || run[j] != run[j - 1])
            runs++;
        unit[j] = runs - 1;
    }
#define CELL(J, I) (&best[(size_t)(J) * (size_t)(m + 1) + (size_t)(I)])
#define OFFER(J, I, SC, PJ, PI, KIND, CHOICE, E)                                                \
    do {                                                                                        \
        Cell *c_ = CELL(J, I);                                                                  \
        double sc_ = (SC);                                                                      \
        if (c_->present ? sc_ > c_->score : sc_ > -INFINITY) {                                  \
            if (!c_->present) {                                                                 \
                c_->present = 1;                                                                \
                c_->stamp = stamp++;                                                            \
            }                                                                                   \
            c_->score = sc_;                                                                    \
            c_->pj = (PJ);                                                                      \
            c_->pi = (PI);                                                                      \
            c_->kind = (KIND);                                                                  \
            c_->choice = (CHOICE);                                                              \
            c_->e = (E);                                                                        \
        }                                                                                       \
    } while (0)
    {
        Cell *c0 = CELL(0, 0);
        c0->present = 1;
        c0->stamp = stamp++;
        c0->score = 0.0;
        c0->kind = -1; /* no way back */
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        long lo_o = lo[j], hi_o = hi[j], u = unit[j];
        double limit = ts[j] + 1e-6;
        long i0 = u - band - max_tickets, i1 = u + band + per * 2;
        if (i0 < 0)
            i0 = 0;
        if (i1 > m)
            i1 = m;
        for (long i = i0; i <= i1; i++) {
            Cell *h = CELL(j, i);
            if (!h->present)
                continue;
            double score = h->score;
            if (score == -INFINITY)
                continue;
            OFFER(j + 1, i, score + garb[j], j, i, 0, 0, 0);
            if (tls13 && i == 0 && j < max_tickets)
                OFFER(j + 1, 0, score + tick[j], j, i, 1, 0, 0);
            if (i == m)
                continue;
            OFFER(j, i + 1, score + skipped, j, i, 4, 0, 0);
            Carry *c = &carry[i];
            if (!c->ready && carry_build(c, rep, alt_model, &pool, (int)m, (int)i, per) < 0)
                goto done;
            for (int k = 1; k <= c->nways; k++) {
                if (c->latest[k - 1] > limit)
                    break;
                if ((double)hi_o < c->least[k - 1])
                    break;
                for (int ch = 0; ch < c->nchoice[k - 1]; ch++) {
                    long blo = c->support[k - 1][2 * ch], bhi = c->support[k - 1][2 * ch + 1];
                    if (!(blo <= hi_o && lo_o <= bhi))
                        continue;
                    double ll = mixed_loglik(&pool, &c->models[k - 1][ch * k], k, lo_o, hi_o) + (double)(k - 1) * shared;
                    if (ll > -INFINITY)
                        OFFER(j + 1, i + k, score + ll, j, i, 2, ch, 0);
                }
            }
            if (splits[i] && rep[i].ts <= limit) {
                long slo = 0, shi = 0;
                for (Py_ssize_t e = j; e < n; e++) {
                    if (run[e] != run[j])
                        break;
                    slo += lo[e];
                    shi += hi[e];
                    if (e > j) {
                        for (int a = 0; a < rep[i].nalt; a++) {
                            if (!alt_split[rep[i].first + a])
                                continue;
                            int mi = alt_model[rep[i].first + a];
                            double ll = mixed_loglik(&pool, &mi, 1, slo, shi);
                            if (ll > -INFINITY)
                                OFFER(e + 1, i + 1, score + ll, j, i, 3, a, (int)e);
                        }
                    }
                }
            }
        }
    }
    /* end: the best of the last row, the first inserted among equals (Python's max(key=...)) */
    double final = -INFINITY;
    long fi = 0, fstamp = 0;
    int found = 0;
    for (long i = 0; i <= m; i++) {
        Cell *c = CELL(n, i);
        if (!c->present)
            continue;
        double sc = c->score + (double)(m - i) * missing;
        if (!found || sc > final || (sc == final && c->stamp < fstamp)) {
            final = sc;
            fi = i;
            fstamp = c->stamp;
            found = 1;
        }
    }
    if (!found || final == -INFINITY) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *out = PyList_New(n);
    if (!out)
        goto done;
    for (Py_ssize_t j = 0; j < n; j++)
        PyList_SET_ITEM(out, j, Py_NewRef(Py_None));
    long j = n, i = fi;
    while (j > 0 || i > 0) {
        Cell *c = CELL(j, i);
        if (!c->present || c->kind < 0)
            break;
        int pj = c->pj, pi = c->pi;
        PyObject *item = NULL;
        if (c->kind == 3) {
            for (int e = pj; e <= c->e; e++) {
                item = Py_BuildValue("(iiii)", 3, pi, pi + 1, c->choice);
                if (!item) {
                    Py_DECREF(out);
                    goto done;
                }
                PyList_SetItem(out, e, item);
            }
        } else if (c->kind != 4) {
            item = Py_BuildValue("(iiii)", c->kind, pi, (int)i, c->choice);
            if (!item) {
                Py_DECREF(out);
                goto done;
            }
            PyList_SetItem(out, pj, item);
        }
        j = pj;
        i = pi;
    }
    result = Py_BuildValue("(dNl)", final, out, fi);
#undef OFFER
#undef CELL
done:
    carry_free(carry, (int)m);
    free(rep);
    free(alt_model);
    free(alt_split);
    free(splits);
    free(lo);
    free(hi);
    free(run);
    free(unit);
    free(ts);
    free(garb);
    free(tick);
    free(best);
    free(pool.v);
    return result;
}

static PyMethodDef methods[] = {
    {"program", py_program, METH_VARARGS, "A template's NFA expansions, for client_align."},
    {"client_align", py_client_align, METH_VARARGS, "align._client_align's Viterbi."},
    {"server_align", py_server_align, METH_VARARGS, "align._server_align's banded alignment."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dissect.port902.infer.dialogue._fastalign",
    "The dynamic programmes of infer/dialogue/align.py in C (align.py is the definition).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastalign(void) {
    PyObject *mod = PyModule_Create(&module);
    if (mod && PyModule_AddIntConstant(mod, "API_VERSION", API_VERSION) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
