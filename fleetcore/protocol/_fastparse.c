/*
 * fleetcore.protocol._fastparse: the compiled fast path of fleetcore.protocol.parse.process_message.
 *
 * It handles only the common, fully valid messages of the three sample kinds, in the shapes devices write:
 *   - telemetry: one flat JSON object (numbers, booleans, null, accel_g [x, y, z], dtc ["P0301", ...]);
 *   - obd: one JSON object {"ts", "seq", "frames": ["41 0C 1A F8", ...]} with service 01 / 03 responses;
 *   - nmea: one RMC with optionally the GGA of the same time before or after it, in the exact shape of
 *     fleetcore.protocol.parse's Python fast path (the same regular expressions, written out).
 * and a device's buffered upload of such samples (a JSON array of such objects; RMC+GGA pairs line after line).
 * For such a message it returns the reading rows (tuples in READING_COLUMNS order) that the Python parser
 * returns, built with the same arithmetic. For ANYTHING else (an error of any kind, a value out of range, a
 * JSON string with an escape, non-ASCII bytes, a nested value, a duplicate key, one bad element of an upload,
 * other NMEA sentences, events, status, a timestamp in the future) it returns None and the Python parser
 * decides, so every rejection and every unusual but valid message is handled by one implementation only. tests/test_fastparse.py checks the
 * two against each other on generated and mutated messages.
 *
 * Ranges, PIDs and limits are not written here: fleetcore.protocol.parse passes them from fleetcore.contract and
 * fleetcore.protocol.obd through configure() at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

/* Column indexes of fleetcore.contract.READING_COLUMNS; fleetcore.protocol.parse compares COLUMNS with it at import. */
enum {
    C_TS, C_DEVICE, C_KIND, C_SEQ, C_LAT, C_LON, C_SPEED, C_HEADING, C_ALT, C_HDOP, C_SATS, C_ODO, C_ENGINE_H,
    C_RPM, C_COOLANT, C_LOAD, C_THROTTLE, C_FUEL, C_BATTERY, C_IGNITION, C_AX, C_AY, C_AZ, C_DTC, C_OBD_EXTRA, NCOLS
};
static Py_ssize_t name_len[NCOLS]; /* strlen of COLUMN_NAMES, set at import */
static const char *const COLUMN_NAMES[NCOLS] = {
    "ts", "device_id", "kind", "seq", "lat", "lon", "speed_kmh", "heading_deg", "alt_m", "hdop", "sats",
    "odometer_km", "engine_hours", "rpm", "coolant_c", "engine_load_pct", "throttle_pct", "fuel_pct",
    "battery_v", "ignition", "accel_x", "accel_y", "accel_z", "dtc", "obd_extra",
};

#define MAX_DTC 32          /* codes per message handled here; more go to Python */
#define MAX_EXTRA 16        /* obd_extra values per sample handled here; more go to Python */
#define MAX_NUMBER_TEXT 63  /* characters of one JSON number handled here */
#define MAX_FRAME_BYTES 16

typedef struct {
    int set;      /* configured by fleetcore.protocol.parse */
    double lo, hi;
    int integer;
} Range;

/* configuration (configure()) */
static int configured = 0;
static Range ranges[NCOLS];                  /* numeric columns: valid range; set = 0 for other columns */
static double accel_limit;
static int64_t min_ts_ms, max_ts_ms, max_seq, skew_us;
static double knot_kmh;
static int64_t rollover_floor_days, rollover_days; /* GPS week rollover: nmea.GPS_ROLLOVER_FLOOR, 1024 weeks */
typedef struct {
    int known;    /* 1: a PID fleetcore.protocol.obd knows */
    int nbytes;
    int col;      /* reading column it feeds, -1 none */
    int formula;  /* F_* below; F_PYTHON: only Python can decode it */
    PyObject *key; /* col -1: the obd_extra key its value is stored under (a reference owned by pids[]) */
} PidSpec;
enum { F_NONE, F_PCT, F_MINUS40, F_DIV4, F_IDENT, F_DIV1000, F_DIV10, F_PYTHON };
static PidSpec pids[256];
static PyObject *s_telemetry, *s_obd, *s_nmea;  /* kind strings */

/* ---------------------------------------------------------------------------------------------- time */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    /* H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dim[m - 1];
}

#define US_PER_DAY INT64_C(86400000000)

/* epoch µs → aware UTC datetime (new reference) */
static PyObject *datetime_from_us(int64_t us) {
    int64_t days = us / US_PER_DAY, rem = us % US_PER_DAY;
    if (rem < 0) { rem += US_PER_DAY; days -= 1; }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / 1000000;
    return PyDateTimeAPI->DateTime_FromDateAndTime(
        y, m, d, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)(rem % 1000000),
        PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
}

/* ---------------------------------------------------------------------------------------------- JSON */

typedef struct {
    const unsigned char *p, *e;
} Cur;

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

static inline void skip_ws(Cur *c) {
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static inline int expect(Cur *c, unsigned char ch) {
    skip_ws(c);
    if (c->p < c->e && *c->p == ch) { c->p++; return 1; }
    return 0;
}

/* A JSON string without escapes, control characters or non-ASCII bytes; 0 otherwise (Python decides). */
static int scan_string(Cur *c, const unsigned char **s, Py_ssize_t *n) {
    if (c->p >= c->e || *c->p != '"') return 0;
    const unsigned char *start = ++c->p;
    while (c->p < c->e) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            *s = start;
            *n = c->p - start;
            c->p++;
            return 1;
        }
        if (ch == '\\' || ch < 0x20 || ch >= 0x80) return 0;
        c->p++;
    }
    return 0;
}

typedef struct {
    int is_int;
    int64_t i;
    double d;
} Number;

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Decimal text [-]digits[.digits] (no exponent) → double, correctly rounded: when the digits form an integer
 * below 2^53 and at most 22 of them follow the point, m / 10^k is one correctly rounded IEEE division of two exact
 * values (Clinger's fast path), so it equals what float() gives; otherwise CPython's PyOS_string_to_double. */
static int decimal_to_double(const unsigned char *s, Py_ssize_t n, double *out) {
    const unsigned char *p = s, *e = s + n;
    int neg = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    uint64_t m = 0;
    int nd = 0, frac = -1, ok = 1;
    for (; p < e; p++) {
        if (*p == '.') {
            if (frac >= 0) { ok = 0; break; }
            frac = 0;
            continue;
        }
        if (!IS_DIGIT(*p)) { ok = 0; break; }
        if (m || *p != '0') nd++;
        if (nd > 15) { ok = 0; break; }
        m = m * 10 + (uint64_t)(*p - '0');
        if (frac >= 0) frac++;
    }
    if (ok && frac <= 22) {
        double v = (double)m;
        if (frac > 0) v = v / POW10[frac];
        *out = neg ? -v : v;
        return 1;
    }
    if (n > MAX_NUMBER_TEXT) return 0;
    char buf[MAX_NUMBER_TEXT + 1];
    memcpy(buf, s, (size_t)n);
    buf[n] = 0;
    char *end;
    double d = PyOS_string_to_double(buf, &end, NULL);
    if (d == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    if (end != buf + n) return 0;
    *out = d;
    return 1;
}

/* A JSON number (RFC 8259 grammar). Integers of at most 18 digits are exact int64; numbers with a fraction or
 * an exponent are converted by CPython's correctly rounded PyOS_string_to_double (what float() uses). */
static int scan_number(Cur *c, Number *out) {
    const unsigned char *s = c->p, *p = s, *e = c->e;
    int neg = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e) return 0;
    const unsigned char *digits = p;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { while (p < e && IS_DIGIT(*p)) p++; }
    else return 0;
    Py_ssize_t ndigits = p - digits;
    int is_float = 0;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !IS_DIGIT(*p)) return 0;
        while (p < e && IS_DIGIT(*p)) p++;
        is_float = 1;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || !IS_DIGIT(*p)) return 0;
        while (p < e && IS_DIGIT(*p)) p++;
        is_float = 1;
    }
    if (p < e && (IS_DIGIT(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' || *p == '+')) return 0;
    if (!is_float) {
        if (ndigits > 18) return 0;
        int64_t v = 0;
        for (const unsigned char *q = digits; q < p; q++) v = v * 10 + (*q - '0');
        out->is_int = 1;
        out->i = neg ? -v : v;
    } else {
        Py_ssize_t len = p - s;
        double d;
        if (len > MAX_NUMBER_TEXT) return 0;
        if (!decimal_to_double(s, len, &d)) return 0; /* exponents take CPython's conversion */
        out->is_int = 0;
        out->d = d;
    }
    c->p = p;
    return 1;
}

static int scan_literal(Cur *c, const char *lit, size_t n) {
    if ((size_t)(c->e - c->p) < n || memcmp(c->p, lit, n) != 0) return 0;
    c->p += n;
    return 1;
}

enum { V_NULL, V_TRUE, V_FALSE, V_NUMBER, V_STRING, V_ARRAY, V_OBJECT, V_BAD };

/* The type of the next value (after whitespace), without consuming it. */
static int peek_value(Cur *c) {
    skip_ws(c);
    if (c->p >= c->e) return V_BAD;
    switch (*c->p) {
        case 'n': return V_NULL;
        case 't': return V_TRUE;
        case 'f': return V_FALSE;
        case '"': return V_STRING;
        case '[': return V_ARRAY;
        case '{': return V_OBJECT;
        default: return (*c->p == '-' || IS_DIGIT(*c->p)) ? V_NUMBER : V_BAD;
    }
}

/* Consume a scalar value (null, true, false, number, plain string); nested values are left to Python. */
static int skip_scalar(Cur *c) {
    const unsigned char *s;
    Py_ssize_t n;
    Number num;
    switch (peek_value(c)) {
        case V_NULL: return scan_literal(c, "null", 4);
        case V_TRUE: return scan_literal(c, "true", 4);
        case V_FALSE: return scan_literal(c, "false", 5);
        case V_NUMBER: return scan_number(c, &num);
        case V_STRING: return scan_string(c, &s, &n);
        default: return 0;
    }
}

/* ---------------------------------------------------------------------------------------------- values */

/* fleetcore.protocol.parse._number for a valid value: the stored value (float, or int for integer fields). */
typedef struct {
    int state; /* 0: None, 1: float, 2: int */
    double d;
    int64_t i;
} Cell;

static int number_cell(const Number *n, const Range *r, Cell *out) {
    if (n->is_int) {
        /* beyond 2^53 every configured range is exceeded anyway; refusing keeps int/float comparison exact */
        if (n->i > (INT64_C(1) << 53) || n->i < -(INT64_C(1) << 53)) return 0;
        double v = (double)n->i;
        if (!(r->lo <= v && v <= r->hi)) return 0;
        if (r->integer) { out->state = 2; out->i = n->i; }
        else { out->state = 1; out->d = v; }
        return 1;
    }
    double v = n->d;
    if (!(r->lo <= v && v <= r->hi)) return 0; /* also refuses inf (overflowing exponents) */
    if (r->integer) {
        if (v != (double)(int64_t)v) return 0;
        out->state = 2;
        out->i = (int64_t)v;
    } else {
        out->state = 1;
        out->d = v;
    }
    return 1;
}

static inline int two(const unsigned char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

static int all_digits(const unsigned char *p, int n) {
    for (int i = 0; i < n; i++)
        if (!IS_DIGIT(p[i])) return 0;
    return 1;
}

/* RFC 3339 date-time with an offset (fleetcore.protocol.parse.RFC3339_RE) → epoch µs; at most 6 fraction digits here. */
static int rfc3339_us(const unsigned char *s, Py_ssize_t n, int64_t *us) {
    if (n < 20) return 0;
    if (!all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' || !all_digits(s + 8, 2))
        return 0;
    if (!(s[10] == 'T' || s[10] == 't' || s[10] == ' ')) return 0;
    if (!all_digits(s + 11, 2) || s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' ||
        !all_digits(s + 17, 2))
        return 0;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
    int h = two(s + 11), mi = two(s + 14), sec = two(s + 17);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return 0;
    Py_ssize_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        int k = 0;
        while (i < n && IS_DIGIT(s[i])) {
            if (++k > 6) return 0;
            frac = frac * 10 + (s[i] - '0');
            i++;
        }
        if (k == 0) return 0;
        for (; k < 6; k++) frac *= 10;
    }
    int64_t offset_s = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && all_digits(s + i + 1, 2) && s[i + 3] == ':' &&
               all_digits(s + i + 4, 2)) {
        int oh = two(s + i + 1), om = two(s + i + 4);
        if (oh > 23 || om > 59) return 0;
        offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return 0;
    }
    if (i != n) return 0;
    *us = days_from_civil(y, (unsigned)mo, (unsigned)d) * US_PER_DAY +
          ((int64_t)h * 3600 + mi * 60 + sec - offset_s) * 1000000 + frac;
    return 1;
}

/* "ts": integer epoch milliseconds or an RFC 3339 string, not before MIN_TS, not beyond the limit. */
static int scan_ts(Cur *c, int64_t limit_us, int64_t *us) {
    int t = peek_value(c);
    if (t == V_NUMBER) {
        Number n;
        if (!scan_number(c, &n) || !n.is_int || n.i < min_ts_ms || n.i > max_ts_ms) return 0;
        *us = n.i * 1000;
    } else if (t == V_STRING) {
        const unsigned char *s;
        Py_ssize_t len;
        if (!scan_string(c, &s, &len) || !rfc3339_us(s, len, us)) return 0;
    } else {
        return 0;
    }
    return *us <= limit_us && *us >= min_ts_ms * 1000;
}

static int scan_seq(Cur *c, int64_t *seq) {
    Number n;
    if (peek_value(c) != V_NUMBER || !scan_number(c, &n) || !n.is_int || n.i < 0 || n.i > max_seq) return 0;
    *seq = n.i;
    return 1;
}

/* One sample's values before they become Python objects (nothing is allocated until it is known good). */
typedef struct {
    int64_t ts_us, seq;
    Cell cells[NCOLS];
    int ignition; /* -1 None, 0, 1 */
    int ndtc;     /* -1: None */
    char dtc[MAX_DTC][5];
    int nextra;   /* obd_extra values, in frame order (a later frame of the same PID overrides in place) */
    PyObject *extra_key[MAX_EXTRA]; /* borrowed from pids[] */
    double extra_val[MAX_EXTRA];
} Sample;

static void sample_init(Sample *s) {
    memset(s, 0, sizeof *s);
    s->ignition = -1;
    s->ndtc = -1;
}

static int dtc_ok(const char *u) {
    return (u[0] == 'P' || u[0] == 'C' || u[0] == 'B' || u[0] == 'U') && u[1] >= '0' && u[1] <= '3' &&
           ((u[2] >= '0' && u[2] <= '9') || (u[2] >= 'A' && u[2] <= 'F')) &&
           ((u[3] >= '0' && u[3] <= '9') || (u[3] >= 'A' && u[3] <= 'F')) &&
           ((u[4] >= '0' && u[4] <= '9') || (u[4] >= 'A' && u[4] <= 'F'));
}

/* "dtc": [] or ["P0301", ...]; codes are upper-cased as fleetcore.protocol.parse._dtc does. */
static int scan_dtc(Cur *c, Sample *smp) {
    if (!expect(c, '[')) return 0;
    smp->ndtc = 0;
    if (expect(c, ']')) return 1;
    for (;;) {
        const unsigned char *s;
        Py_ssize_t n;
        skip_ws(c);
        if (!scan_string(c, &s, &n) || n != 5 || smp->ndtc >= MAX_DTC) return 0;
        char *u = smp->dtc[smp->ndtc++];
        for (int k = 0; k < 5; k++) u[k] = (char)((s[k] >= 'a' && s[k] <= 'z') ? s[k] - 32 : s[k]);
        if (!dtc_ok(u)) return 0;
        if (expect(c, ',')) continue;
        return expect(c, ']');
    }
}

/* "accel_g": [x, y, z], each within ±ACCEL_LIMIT_G, stored as floats. */
static int scan_accel(Cur *c, Sample *smp) {
    Range r = {1, -accel_limit, accel_limit, 0};
    if (!expect(c, '[')) return 0;
    for (int k = 0; k < 3; k++) {
        Number n;
        if ((k && !expect(c, ',')) || peek_value(c) != V_NUMBER || !scan_number(c, &n) ||
            !number_cell(&n, &r, &smp->cells[C_AX + k]))
            return 0;
    }
    return expect(c, ']');
}

/* ---------------------------------------------------------------------------------------------- OBD */

static inline int hexval(unsigned char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

static double pid_value(int formula, const unsigned char *d, int n) {
    uint64_t u = 0;
    for (int k = 0; k < n; k++) u = (u << 8) | d[k];
    switch (formula) {
        case F_PCT: return (double)d[0] * (100.0 / 255.0);
        case F_MINUS40: return (double)d[0] - 40.0;
        case F_DIV4: return (double)u / 4.0;
        case F_IDENT: return (double)u;
        case F_DIV1000: return (double)u / 1000.0;
        case F_DIV10: return (double)u / 10.0;
        default: return 0.0;
    }
}

static const char DTC_LETTERS[4] = {'P', 'C', 'B', 'U'};
static const char HEX_UPPER[] = "0123456789ABCDEF";

/* One ELM327 response frame ("41 0C 1A F8" or "410C1AF8"), decoded as fleetcore.protocol.obd.decode_frames does. */
static int obd_frame(const unsigned char *s, Py_ssize_t n, Sample *smp) {
    unsigned char b[MAX_FRAME_BYTES];
    int nb = 0;
    Py_ssize_t i = 0;
    for (;;) {
        while (i < n && s[i] == ' ') i++;
        if (i >= n) break;
        if (i + 1 >= n || nb >= MAX_FRAME_BYTES) return 0;
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return 0;
        b[nb++] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    if (nb == 0) return 0;
    if (b[0] == 0x41) {
        if (nb < 2) return 0;
        const PidSpec *p = &pids[b[1]];
        if (!p->known || p->formula == F_PYTHON || nb != 2 + p->nbytes) return 0;
        if (p->col >= 0) {
            smp->cells[p->col].state = 1;
            smp->cells[p->col].d = pid_value(p->formula, b + 2, p->nbytes);
        } else if (p->key) {
            if (smp->nextra >= MAX_EXTRA) return 0;
            smp->extra_key[smp->nextra] = p->key;
            smp->extra_val[smp->nextra++] = pid_value(p->formula, b + 2, p->nbytes);
        }
        return 1;
    }
    if (b[0] == 0x43) {
        int body = nb - 1;
        if (body % 2 || body < 2 || body > 6) return 0;
        if (smp->ndtc < 0) smp->ndtc = 0;
        for (int k = 1; k < nb; k += 2) {
            if (!b[k] && !b[k + 1]) continue; /* 00 00: empty slot */
            if (smp->ndtc >= MAX_DTC) return 0;
            char *u = smp->dtc[smp->ndtc++];
            u[0] = DTC_LETTERS[b[k] >> 6];
            u[1] = (char)('0' + ((b[k] >> 4) & 0x3));
            u[2] = HEX_UPPER[b[k] & 0xF];
            u[3] = HEX_UPPER[b[k + 1] >> 4];
            u[4] = HEX_UPPER[b[k + 1] & 0xF];
        }
        return 1;
    }
    return 0;
}

static int scan_frames(Cur *c, Sample *smp) {
    if (!expect(c, '[')) return 0;
    int count = 0;
    for (;;) {
        const unsigned char *s;
        Py_ssize_t n;
        skip_ws(c);
        if (!scan_string(c, &s, &n) || !obd_frame(s, n, smp)) return 0;
        count++;
        if (expect(c, ',')) continue;
        return expect(c, ']') && count > 0;
    }
}

/* ---------------------------------------------------------------------------------------------- samples */

#define MAX_SAMPLES 10000 /* samples per message handled here (a device's buffered upload); more go to Python */

/* The samples of one message: the first two inline, more on the heap (a buffered upload). */
typedef struct {
    Sample inline_[2];
    Sample *heap;
    Py_ssize_t n, cap;
} Samples;

static void samples_init(Samples *s) {
    s->heap = NULL;
    s->n = 0;
    s->cap = 2;
}

static void samples_free(Samples *s) { PyMem_Free(s->heap); }

static inline Sample *sample_at(Samples *s, Py_ssize_t i) { return s->heap ? &s->heap[i] : &s->inline_[i]; }

/* The next sample slot, initialised; NULL when there are too many (Python decides) or memory ran out. */
static Sample *samples_next(Samples *s) {
    if (s->n >= MAX_SAMPLES) return NULL;
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap * 4;
        Sample *h = PyMem_Realloc(s->heap, (size_t)cap * sizeof(Sample));
        if (!h) return NULL;
        if (!s->heap) memcpy(h, s->inline_, sizeof s->inline_);
        s->heap = h;
        s->cap = cap;
    }
    Sample *smp = sample_at(s, s->n++);
    sample_init(smp);
    return smp;
}

/* ---------------------------------------------------------------------------------------------- JSON kinds */

enum { K_TS = 0, K_SEQ, K_IGNITION, K_ACCEL, K_DTC, K_FRAMES, K_NUMERIC }; /* K_NUMERIC + column */

static int key_id(const unsigned char *k, Py_ssize_t n, int obd) {
#define IS(lit) (n == (Py_ssize_t)sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)
    if (IS("ts")) return K_TS;
    if (IS("seq")) return K_SEQ;
    if (obd) return IS("frames") ? K_FRAMES : -1;
    if (IS("ignition")) return K_IGNITION;
    if (IS("accel_g")) return K_ACCEL;
    if (IS("dtc")) return K_DTC;
#undef IS
    for (int col = C_LAT; col <= C_BATTERY; col++) {
        if (n == name_len[col] && k[0] == (unsigned char)COLUMN_NAMES[col][0] &&
            memcmp(k, COLUMN_NAMES[col], (size_t)n) == 0)
            return K_NUMERIC + col;
    }
    return -1;
}

/* One JSON telemetry or OBD object: 1 and the sample, or 0 (Python decides). */
static int json_object(Cur *c, int obd, int64_t limit_us, Sample *smp) {
    uint64_t seen = 0;
    if (!expect(c, '{')) return 0;
    skip_ws(c);
    if (c->p < c->e && *c->p == '}') return 0; /* {}: missing ts */
    for (;;) {
        const unsigned char *k;
        Py_ssize_t kn;
        skip_ws(c);
        if (!scan_string(c, &k, &kn) || !expect(c, ':')) return 0;
        int id = key_id(k, kn, obd);
        if (id < 0) {
            if (!skip_scalar(c)) return 0; /* a field this contract version ignores */
        } else {
            if (seen & (UINT64_C(1) << id)) return 0; /* duplicate key: the last one wins in Python */
            seen |= UINT64_C(1) << id;
            int t = peek_value(c);
            if (t == V_NULL && id != K_TS && id != K_SEQ && id != K_FRAMES) {
                if (!scan_literal(c, "null", 4)) return 0; /* null = not measured */
            } else if (id == K_TS) {
                if (!scan_ts(c, limit_us, &smp->ts_us)) return 0;
            } else if (id == K_SEQ) {
                if (!scan_seq(c, &smp->seq)) return 0;
            } else if (id == K_IGNITION) {
                if (t == V_TRUE && scan_literal(c, "true", 4)) smp->ignition = 1;
                else if (t == V_FALSE && scan_literal(c, "false", 5)) smp->ignition = 0;
                else return 0;
            } else if (id == K_ACCEL) {
                if (!scan_accel(c, smp)) return 0;
            } else if (id == K_DTC) {
                if (!scan_dtc(c, smp)) return 0;
            } else if (id == K_FRAMES) {
                if (!scan_frames(c, smp)) return 0;
            } else {
                Number n;
                int col = id - K_NUMERIC;
                if (t != V_NUMBER || !scan_number(c, &n) || !number_cell(&n, &ranges[col], &smp->cells[col]))
                    return 0;
            }
        }
        if (expect(c, ',')) continue;
        if (!expect(c, '}')) return 0;
        break;
    }
    if (!(seen & (UINT64_C(1) << K_TS)) || !(seen & (UINT64_C(1) << K_SEQ))) return 0;
    if (obd && !(seen & (UINT64_C(1) << K_FRAMES))) return 0;
    return 1;
}

/* A telemetry or OBD message: one object, or an array of objects (a buffered upload) that are all valid. */
static int json_samples(Cur *c, int obd, int64_t limit_us, Samples *out) {
    skip_ws(c);
    if (c->p < c->e && *c->p == '[') {
        c->p++;
        if (expect(c, ']')) return 0; /* an empty array is a rejection */
        for (;;) {
            Sample *smp = samples_next(out);
            if (!smp || !json_object(c, obd, limit_us, smp)) return 0;
            if (expect(c, ',')) continue;
            if (!expect(c, ']')) return 0;
            break;
        }
    } else {
        Sample *smp = samples_next(out);
        if (!smp || !json_object(c, obd, limit_us, smp)) return 0;
    }
    skip_ws(c);
    return c->p == c->e;
}

/* ---------------------------------------------------------------------------------------------- NMEA */

typedef struct {
    const unsigned char *p, *e;
} Span;

/* \d{lo,hi} */
static int digits(Cur *c, int lo, int hi, Span *sp) {
    const unsigned char *s = c->p;
    int k = 0;
    while (c->p < c->e && IS_DIGIT(*c->p) && k < hi) { c->p++; k++; }
    if (k < lo || (c->p < c->e && IS_DIGIT(*c->p))) return 0;
    if (sp) { sp->p = s; sp->e = c->p; }
    return 1;
}

static int lit(Cur *c, const char *s) {
    size_t n = strlen(s);
    return scan_literal(c, s, n);
}

static int one_of(Cur *c, const char *set, char *got) {
    if (c->p < c->e && *c->p && strchr(set, *c->p)) {
        if (got) *got = (char)*c->p;
        c->p++;
        return 1;
    }
    return 0;
}

/* \d{ilo,ihi}\.\d{flo,fhi} */
static int decimal(Cur *c, int ilo, int ihi, int flo, int fhi, Span *sp) {
    const unsigned char *s = c->p;
    if (!digits(c, ilo, ihi, NULL) || !lit(c, ".") || !digits(c, flo, fhi, NULL)) return 0;
    sp->p = s;
    sp->e = c->p;
    return 1;
}

static int to_double(Span sp, double *out) { return decimal_to_double(sp.p, sp.e - sp.p, out); }

/* "*HH" after a sentence body: the XOR of the body's characters, upper-case hex. */
static int checksum(Cur *c, const unsigned char *body, const unsigned char *body_end) {
    if (!lit(c, "*") || c->e - c->p < 2) return 0;
    int hi = hexval(c->p[0]), lo = hexval(c->p[1]);
    if (hi < 0 || lo < 0 || (c->p[0] >= 'a') || (c->p[1] >= 'a')) return 0;
    unsigned x = 0;
    for (const unsigned char *q = body; q < body_end; q++) x ^= *q;
    c->p += 2;
    return x == (unsigned)(hi << 4 | lo);
}

/* pynmea2's dm_to_sd: float(text[:dot - 2]) + float(text[dot - 2:]) / 60 */
static int dm_to_sd(Span sp, double *out) {
    const unsigned char *dot = sp.p;
    while (*dot != '.') dot++;
    Span deg = {sp.p, dot - 2}, min = {dot - 2, sp.e};
    double dd, mm;
    if (!to_double(deg, &dd) || !to_double(min, &mm) || mm >= 60.0) return 0; /* minutes ≥ 60: Python refuses */
    *out = dd + mm / 60.0;
    return 1;
}

static int line_end(Cur *c) {
    if (lit(c, "\r\n") || lit(c, "\n")) return 1;
    return 0;
}

static int in_range(int col, double v) { return ranges[col].lo <= v && v <= ranges[col].hi; }

/* "$G[PN]<type>,(\d{6}(?:\.\d{1,3})?)": where the checksummed body starts, and the time field. */
static int sentence_head(Cur *c, const char *type, const unsigned char **body, Span *time) {
    if (!lit(c, "$")) return 0;
    *body = c->p;
    if (!lit(c, "G") || !one_of(c, "PN", NULL) || !lit(c, type) || !lit(c, ",")) return 0;
    time->p = c->p;
    if (!digits(c, 6, 6, NULL)) return 0;
    if (c->p < c->e && *c->p == '.') {
        c->p++;
        if (!digits(c, 1, 3, NULL)) return 0;
    }
    time->e = c->p;
    return 1;
}

typedef struct {
    Span time;
    int64_t sats;
    double hdop, alt;
} Gga;

/* \$(G[PN]GGA,(time),\d{4}\.\d{1,7},[NS],\d{5}\.\d{1,7},[EW],([1-8]),(\d{1,2}),(\d{1,3}\.\d{1,3}),
 *   (-?\d{1,5}\.\d{1,3}),M,[0-9A-Za-z.,-]*)\*([0-9A-F]{2}) */
static int scan_gga(Cur *c, Gga *g) {
    Span sats_s, hdop_s, alt_s, skip;
    const unsigned char *gbody;
    if (!sentence_head(c, "GGA", &gbody, &g->time)) return 0;
    if (!lit(c, ",") || !decimal(c, 4, 4, 1, 7, &skip) || !lit(c, ",") || !one_of(c, "NS", NULL) ||
        !lit(c, ",") || !decimal(c, 5, 5, 1, 7, &skip) || !lit(c, ",") || !one_of(c, "EW", NULL) ||
        !lit(c, ",") || !one_of(c, "12345678", NULL) || !lit(c, ",") || !digits(c, 1, 2, &sats_s) ||
        !lit(c, ",") || !decimal(c, 1, 3, 1, 3, &hdop_s) || !lit(c, ","))
        return 0;
    const unsigned char *a0 = c->p;
    if (c->p < c->e && *c->p == '-') c->p++;
    if (!decimal(c, 1, 5, 1, 3, &alt_s)) return 0;
    alt_s.p = a0;
    if (!lit(c, ",M,")) return 0;
    while (c->p < c->e && *c->p != '*') {
        unsigned char ch = *c->p;
        if (!(IS_DIGIT(ch) || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '.' || ch == ',' ||
              ch == '-'))
            return 0;
        c->p++;
    }
    if (!checksum(c, gbody, c->p)) return 0;
    g->sats = 0;
    for (const unsigned char *q = sats_s.p; q < sats_s.e; q++) g->sats = g->sats * 10 + (*q - '0');
    return to_double(hdop_s, &g->hdop) && to_double(alt_s, &g->alt);
}

static int same_span(Span a, Span b) {
    return a.e - a.p == b.e - b.p && memcmp(a.p, b.p, (size_t)(a.e - a.p)) == 0;
}

/* A line that starts like "$G?GGA" (the GGA-first order of most receivers). */
static int at_gga(const Cur *c) { return c->e - c->p >= 6 && memcmp(c->p + 3, "GGA", 3) == 0; }

static int nmea_fix(Cur *c, int64_t limit_us, Sample *smp) {
    /* One fix: RMC then optionally its GGA, or GGA then its RMC (same time of day, the exact text). */
    Gga gga;
    int have_gga = 0;
    if (at_gga(c)) {
        if (!scan_gga(c, &gga) || !line_end(c)) return 0;
        have_gga = 1;
    }
    /* RMC: \$(G[PN]RMC,(time),A,(lat),([NS]),(lon),([EW]),(speed),(course),(date),,,[AD])\*([0-9A-F]{2}) */
    Span time_s, lat_s, lon_s, spd_s, crs_s, date_s;
    const unsigned char *body;
    char ns, ew;
    if (!sentence_head(c, "RMC", &body, &time_s)) return 0;
    if (!lit(c, ",A,") || !decimal(c, 4, 4, 1, 7, &lat_s) || !lit(c, ",") || !one_of(c, "NS", &ns) ||
        !lit(c, ",") || !decimal(c, 5, 5, 1, 7, &lon_s) || !lit(c, ",") || !one_of(c, "EW", &ew) ||
        !lit(c, ",") || !decimal(c, 1, 4, 1, 4, &spd_s) || !lit(c, ",") || !decimal(c, 1, 3, 1, 4, &crs_s) ||
        !lit(c, ","))
        return 0;
    if (!digits(c, 6, 6, &date_s) || !lit(c, ",,,") || !one_of(c, "AD", NULL)) return 0;
    if (!checksum(c, body, c->p)) return 0;

    /* pynmea2: timestamp(hhmmss[.sss]) and datestamp(ddmmyy, strptime %d%m%y), combined in UTC */
    const unsigned char *t = time_s.p;
    int h = two(t), mi = two(t + 2), sec = two(t + 4);
    int64_t micro = 0;
    if (time_s.e - t > 6) {
        double f;
        Span frac = {t + 6, time_s.e};
        if (!to_double(frac, &f)) return 0;
        micro = (int64_t)(f * 1000000); /* int(float(ms_s) * 1000000): truncation, as pynmea2 does */
    }
    const unsigned char *dt = date_s.p;
    int d = two(dt), mo = two(dt + 2), yy = two(dt + 4);
    int y = yy >= 69 ? 1900 + yy : 2000 + yy; /* strptime %y */
    if (h > 23 || mi > 59 || sec > 59 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return 0;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    while (days < rollover_floor_days) days += rollover_days; /* nmea.rollover: GPS week-number rollover */
    int64_t us = days * US_PER_DAY + ((int64_t)h * 3600 + mi * 60 + sec) * 1000000 + micro;

    double lat, lon, speed, course;
    if (!dm_to_sd(lat_s, &lat) || !dm_to_sd(lon_s, &lon) || !to_double(spd_s, &speed) ||
        !to_double(crs_s, &course))
        return 0;
    if (ns == 'S') lat = -lat;
    if (ew == 'W') lon = -lon;
    speed = speed * knot_kmh;

    if (have_gga) {
        if (!same_span(gga.time, time_s)) return 0;
    } else {
        const unsigned char *after_rmc = c->p;
        if (line_end(c) && at_gga(c)) {
            if (!scan_gga(c, &gga) || !same_span(gga.time, time_s)) return 0;
            have_gga = 1;
        } else {
            c->p = after_rmc; /* the next line (if any) is not this fix's GGA */
        }
    }

    if (us > limit_us || us < min_ts_ms * 1000) return 0;
    if (!in_range(C_LAT, lat) || !in_range(C_LON, lon) || !in_range(C_SPEED, speed) ||
        !in_range(C_HEADING, course))
        return 0;
    smp->ts_us = us;
    smp->seq = us >= 0 ? us / 1000 : -((-us + 999) / 1000); /* (ts - EPOCH) // 1 ms */
    smp->cells[C_LAT] = (Cell){1, lat, 0};
    smp->cells[C_LON] = (Cell){1, lon, 0};
    smp->cells[C_SPEED] = (Cell){1, speed, 0};
    smp->cells[C_HEADING] = (Cell){1, course, 0};
    if (have_gga) {
        if (!in_range(C_ALT, gga.alt) || !in_range(C_HDOP, gga.hdop) || (double)gga.sats < ranges[C_SATS].lo ||
            (double)gga.sats > ranges[C_SATS].hi)
            return 0;
        smp->cells[C_ALT] = (Cell){1, gga.alt, 0};
        smp->cells[C_HDOP] = (Cell){1, gga.hdop, 0};
        smp->cells[C_SATS] = (Cell){2, 0, gga.sats};
    }
    return 1;
}

#define MAX_FIXES 256 /* fixes per NMEA message handled here; more go to Python */

/* An NMEA message: RMC (+ the GGA of the same time, before or after it) per fix, one fix per line pair, as a
 * buffered upload sends them. Python's decoder pairs a GGA with the nearest RMC of the same time of day (the best
 * GGA when several) and drops a repeated fix; here every GGA is next to its RMC, one per fix, and no time of day
 * repeats, so both give the same fixes. */
static int nmea_samples(Cur *c, int64_t limit_us, Samples *out) {
    for (;;) {
        Sample *smp = out->n < MAX_FIXES ? samples_next(out) : NULL;
        if (!smp || !nmea_fix(c, limit_us, smp)) return 0;
        if (c->p == c->e) break;
        if (!line_end(c)) return 0;
        if (c->p == c->e) break; /* a final line end */
    }
    for (Py_ssize_t i = 1; i < out->n; i++) {
        int64_t tod = sample_at(out, i)->ts_us % US_PER_DAY;
        for (Py_ssize_t j = 0; j < i; j++)
            if (sample_at(out, j)->ts_us % US_PER_DAY == tod) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------- row */

static PyObject *build_row(const Sample *smp, PyObject *device_id, PyObject *kind) {
    PyObject *row = PyTuple_New(NCOLS);
    if (!row) return NULL;
    PyObject *v = datetime_from_us(smp->ts_us);
    if (!v) goto fail;
    PyTuple_SET_ITEM(row, C_TS, v);
    Py_INCREF(device_id);
    PyTuple_SET_ITEM(row, C_DEVICE, device_id);
    Py_INCREF(kind);
    PyTuple_SET_ITEM(row, C_KIND, kind);
    if (!(v = PyLong_FromLongLong(smp->seq))) goto fail;
    PyTuple_SET_ITEM(row, C_SEQ, v);
    for (int col = C_LAT; col < NCOLS; col++) {
        if (col == C_IGNITION) {
            v = smp->ignition < 0 ? Py_None : smp->ignition ? Py_True : Py_False;
            Py_INCREF(v);
        } else if (col == C_OBD_EXTRA) {
            if (smp->nextra == 0) {
                v = Py_None;
                Py_INCREF(v);
            } else {
                /* a dict in frame order, a key seen again keeping its place: Python's extra[key] = value */
                if (!(v = PyDict_New())) goto fail;
                for (int k = 0; k < smp->nextra; k++) {
                    PyObject *f = PyFloat_FromDouble(smp->extra_val[k]);
                    if (!f || PyDict_SetItem(v, smp->extra_key[k], f) < 0) {
                        Py_XDECREF(f);
                        Py_DECREF(v);
                        goto fail;
                    }
                    Py_DECREF(f);
                }
            }
        } else if (col == C_DTC) {
            if (smp->ndtc < 0) {
                v = Py_None;
                Py_INCREF(v);
            } else {
                if (!(v = PyList_New(smp->ndtc))) goto fail;
                for (int k = 0; k < smp->ndtc; k++) {
                    PyObject *code = PyUnicode_FromStringAndSize(smp->dtc[k], 5);
                    if (!code) { Py_DECREF(v); goto fail; }
                    PyList_SET_ITEM(v, k, code);
                }
            }
        } else {
            const Cell *cell = &smp->cells[col];
            if (cell->state == 1) v = PyFloat_FromDouble(cell->d);
            else if (cell->state == 2) v = PyLong_FromLongLong(cell->i);
            else { v = Py_None; Py_INCREF(v); }
            if (!v) goto fail;
        }
        PyTuple_SET_ITEM(row, col, v);
    }
    return row;
fail:
    Py_DECREF(row); /* unset items are NULL, which tuple deallocation skips */
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- API */

static int64_t datetime_to_us(PyObject *dt) {
    int64_t days = days_from_civil(PyDateTime_GET_YEAR(dt), (unsigned)PyDateTime_GET_MONTH(dt),
                                   (unsigned)PyDateTime_GET_DAY(dt));
    return days * US_PER_DAY +
           ((int64_t)PyDateTime_DATE_GET_HOUR(dt) * 3600 + PyDateTime_DATE_GET_MINUTE(dt) * 60 +
            PyDateTime_DATE_GET_SECOND(dt)) * 1000000 +
           PyDateTime_DATE_GET_MICROSECOND(dt);
}

PyDoc_STRVAR(parse_doc,
"parse(kind, device_id, payload, now) -> list[tuple] | None\n\n"
"The reading rows of a common, valid telemetry / obd / nmea message (one sample, or a buffered upload of\n"
"several), exactly as fleetcore.protocol.parse's Python code makes them; None for anything else (the caller then runs the Python parser). `now` must be an aware UTC\n"
"datetime (otherwise None).");

static PyObject *fp_parse(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "parse(kind, device_id, payload, now)");
        return NULL;
    }
    PyObject *kind = args[0], *device_id = args[1], *payload = args[2], *now = args[3];
    if (!configured || !PyUnicode_Check(kind) || !PyUnicode_Check(device_id) || !PyDateTime_Check(now) ||
        PyDateTime_DATE_GET_TZINFO(now) != PyDateTime_TimeZone_UTC)
        Py_RETURN_NONE;
    PyObject *kind_obj;
    int mode;
    if (PyUnicode_Compare(kind, s_telemetry) == 0) { mode = 0; kind_obj = s_telemetry; }
    else if (PyUnicode_Compare(kind, s_obd) == 0) { mode = 1; kind_obj = s_obd; }
    else if (PyUnicode_Compare(kind, s_nmea) == 0) { mode = 2; kind_obj = s_nmea; }
    else {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(payload, &buf, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Cur c = {(const unsigned char *)buf.buf, (const unsigned char *)buf.buf + buf.len};
    int64_t limit_us = datetime_to_us(now) + skew_us;
    Samples samples;
    samples_init(&samples);
    int ok = mode == 2 ? nmea_samples(&c, limit_us, &samples) : json_samples(&c, mode == 1, limit_us, &samples);
    PyBuffer_Release(&buf);
    PyObject *rows = NULL;
    if (ok && (rows = PyList_New(samples.n))) {
        for (Py_ssize_t i = 0; i < samples.n; i++) {
            PyObject *row = build_row(sample_at(&samples, i), device_id, kind_obj);
            if (!row) {
                Py_CLEAR(rows);
                break;
            }
            PyList_SET_ITEM(rows, i, row);
        }
    }
    samples_free(&samples);
    if (rows) return rows;
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(configure_doc,
"configure(fields, accel_limit, min_ts_ms, max_ts_ms, max_seq, skew_s, knot_kmh, pids, rollover_floor_days,\n"
"          rollover_days)\n\n"
"fields: [(name, lo, hi, integer)] of fleetcore.contract.NUMERIC_FIELDS; pids: [(pid, nbytes, column or\n"
"None, formula, obd_extra key or None)] with formula one of FORMULAS (\"python\": only Python decodes it);\n"
"rollover_floor_days: fleetcore.protocol.nmea.GPS_ROLLOVER_FLOOR in days since 1970, rollover_days: 1024 weeks.");

static PyObject *fp_configure(PyObject *self, PyObject *args) {
    PyObject *fields, *pid_list;
    long long min_ms, max_ms, mseq, skew_s;
    double accel, knot;
    long long floor_days, roll_days;
    if (!PyArg_ParseTuple(args, "OdLLLLdOLL", &fields, &accel, &min_ms, &max_ms, &mseq, &skew_s, &knot, &pid_list,
                          &floor_days, &roll_days))
        return NULL;
    Range new_ranges[NCOLS];
    PidSpec new_pids[256];
    memset(new_ranges, 0, sizeof new_ranges);
    memset(new_pids, 0, sizeof new_pids);
    PyObject *it = PyObject_GetIter(fields), *item;
    if (!it) return NULL;
    while ((item = PyIter_Next(it))) {
        const char *name;
        double lo, hi;
        int integer;
        if (!PyArg_ParseTuple(item, "sddp", &name, &lo, &hi, &integer)) {
            Py_DECREF(item);
            Py_DECREF(it);
            return NULL;
        }
        int col = -1;
        for (int k = C_LAT; k <= C_BATTERY; k++)
            if (strcmp(COLUMN_NAMES[k], name) == 0) col = k;
        Py_DECREF(item);
        if (col < 0) {
            Py_DECREF(it);
            return PyErr_Format(PyExc_ValueError, "numeric field %s is not a column this module knows", name);
        }
        new_ranges[col] = (Range){1, lo, hi, integer};
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    for (int k = C_LAT; k <= C_BATTERY; k++)
        if (!new_ranges[k].set)
            return PyErr_Format(PyExc_ValueError, "no range for column %s", COLUMN_NAMES[k]);
    it = PyObject_GetIter(pid_list);
    if (!it) return NULL;
    while ((item = PyIter_Next(it))) {
        int pid, nbytes, formula;
        PyObject *field, *key;
        const char *error = NULL;
        if (!PyArg_ParseTuple(item, "iiOiO", &pid, &nbytes, &field, &formula, &key)) {
            Py_DECREF(item);
            goto pid_fail;
        }
        int col = -1;
        if (field != Py_None) {
            const char *fname = PyUnicode_AsUTF8(field);
            if (!fname) { Py_DECREF(item); goto pid_fail; }
            for (int k = C_LAT; k <= C_BATTERY; k++)
                if (strcmp(COLUMN_NAMES[k], fname) == 0) col = k;
            if (col < 0) formula = F_PYTHON; /* a column this module does not know: Python decodes it */
        }
        if (pid < 0 || pid > 255 || nbytes < 1 || nbytes > MAX_FRAME_BYTES - 2 || formula < F_NONE ||
            formula > F_PYTHON)
            error = "bad PID spec";
        if (!error && formula == F_NONE && col >= 0) formula = F_PYTHON;
        if (!error && col < 0 && formula != F_PYTHON && formula != F_NONE && !PyUnicode_Check(key))
            error = "a PID without a column needs an obd_extra key";
        if (error) {
            Py_DECREF(item);
            PyErr_Format(PyExc_ValueError, "%s (PID %d)", error, pid);
            goto pid_fail;
        }
        PyObject *owned = NULL;
        if (col < 0 && formula != F_PYTHON && formula != F_NONE) {
            owned = key;
            Py_INCREF(owned); /* before the tuple that lends it is released */
        }
        Py_DECREF(item);
        Py_XDECREF(new_pids[pid].key);
        new_pids[pid] = (PidSpec){1, nbytes, col, formula, owned};
    }
    if (PyErr_Occurred()) goto pid_fail;
    Py_DECREF(it);
    memcpy(ranges, new_ranges, sizeof ranges);
    for (int k = 0; k < 256; k++) Py_XDECREF(pids[k].key);
    memcpy(pids, new_pids, sizeof pids);
    accel_limit = accel;
    min_ts_ms = min_ms;
    max_ts_ms = max_ms;
    max_seq = mseq;
    skew_us = skew_s * 1000000;
    knot_kmh = knot;
    rollover_floor_days = floor_days;
    rollover_days = roll_days > 0 ? roll_days : 7168;
    configured = 1;
    Py_RETURN_NONE;
pid_fail:
    Py_DECREF(it);
    for (int k = 0; k < 256; k++) Py_XDECREF(new_pids[k].key);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))fp_parse, METH_FASTCALL, parse_doc},
    {"configure", fp_configure, METH_VARARGS, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "fleetcore.protocol._fastparse",
    "Compiled fast path of fleetcore.protocol.parse for common, valid device messages (see the C source's header).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fastparse(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    s_telemetry = PyUnicode_InternFromString("telemetry");
    s_obd = PyUnicode_InternFromString("obd");
    s_nmea = PyUnicode_InternFromString("nmea");
    PyObject *cols = PyTuple_New(NCOLS);
    if (!s_telemetry || !s_obd || !s_nmea || !cols) goto fail;
    for (int k = 0; k < NCOLS; k++) {
        name_len[k] = (Py_ssize_t)strlen(COLUMN_NAMES[k]);
        PyObject *s = PyUnicode_FromString(COLUMN_NAMES[k]);
        if (!s) { Py_DECREF(cols); goto fail; }
        PyTuple_SET_ITEM(cols, k, s);
    }
    if (PyModule_AddObject(m, "COLUMNS", cols) < 0) { Py_DECREF(cols); goto fail; }
    PyObject *formulas = Py_BuildValue("{sisisisisisisisi}", "none", F_NONE, "pct", F_PCT, "minus40", F_MINUS40,
                                       "div4", F_DIV4, "ident", F_IDENT, "div1000", F_DIV1000, "div10", F_DIV10,
                                       "python", F_PYTHON);
    if (!formulas || PyModule_AddObject(m, "FORMULAS", formulas) < 0) { Py_XDECREF(formulas); goto fail; }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
