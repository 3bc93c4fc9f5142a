/*
 * linemon_shim: an LD_PRELOAD library that gives a pseudo-terminal the modem control lines it lacks.
 *
 * A pty refuses the TIOCMGET / TIOCMSET / TIOCMBIS / TIOCMBIC ioctls, so a program that bit-bangs DTR and
 * RTS (bottlerocket's `br`, or omha's CM17A driver through pyserial) cannot run against one. Preloaded,
 * this library answers those four ioctls from a per-process line state (DTR and RTS start high, as after
 * opening a real port) and appends every change to the file named by $LINEMON_LOG:
 *
 *     <nanoseconds> <op> <dtr> <rts>        e.g.  "1234567 bic 0 1"  (DTR dropped: RTS alone)
 *
 * Every other ioctl goes to the real one. With LINEMON_FAST=1, sleeps (select without descriptors,
 * nanosleep, clock_nanosleep, usleep) return at once and gettimeofday runs on a virtual clock that advances
 * by the time slept and by 100 us per call (so busy-wait loops end): the same line changes, in a fraction
 * of the time. Timestamps in the log follow the virtual clock.
 *
 * Built by the tests with: gcc -shared -fPIC -o linemon.so linemon_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int lines = TIOCM_DTR | TIOCM_RTS;
static int log_fd = -1;
static long long skew_ns; /* virtual clock minus real monotonic clock (LINEMON_FAST) */

static int fast(void) {
    const char *v = getenv("LINEMON_FAST");
    return v && strcmp(v, "1") == 0;
}

static long long real_ns(clockid_t clk) {
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0) return 0;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void log_lines(const char *op) {
    if (log_fd < 0) {
        const char *path = getenv("LINEMON_LOG");
        if (!path) return;
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (log_fd < 0) return;
    }
    char buf[96];
    int n = snprintf(buf, sizeof buf, "%lld %s %d %d\n", real_ns(CLOCK_MONOTONIC) + skew_ns, op,
                     (lines & TIOCM_DTR) ? 1 : 0, (lines & TIOCM_RTS) ? 1 : 0);
    if (n > 0) (void)!write(log_fd, buf, (size_t)n);
}

int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    switch (request) {
    case TIOCMGET:
        *(int *)arg = lines;
        return 0;
    case TIOCMSET:
        lines = *(const int *)arg;
        log_lines("set");
        return 0;
    case TIOCMBIS:
        lines |= *(const int *)arg;
        log_lines("bis");
        return 0;
    case TIOCMBIC:
        lines &= ~*(const int *)arg;
        log_lines("bic");
        return 0;
    }
    static int (*real_ioctl)(int, unsigned long, ...);
    if (!real_ioctl) real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    return real_ioctl(fd, request, arg);
}

/* ---- LINEMON_FAST: sleeping advances a virtual clock instead of waiting ---- */

static void advance(long long ns) {
    if (ns > 0) skew_ns += ns;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv) {
    static int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    if (!real_select) real_select = (int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))dlsym(RTLD_NEXT, "select");
    if (fast() && nfds == 0 && tv) { /* a pure sleep */
        advance((long long)tv->tv_sec * 1000000000LL + (long long)tv->tv_usec * 1000LL);
        tv->tv_sec = tv->tv_usec = 0;
        return 0;
    }
    return real_select(nfds, r, w, e, tv);
}

int nanosleep(const struct timespec *req, struct timespec *rem) {
    static int (*real_nanosleep)(const struct timespec *, struct timespec *);
    if (!real_nanosleep) real_nanosleep = (int (*)(const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "nanosleep");
    if (fast() && req) {
        advance((long long)req->tv_sec * 1000000000LL + req->tv_nsec);
        if (rem) rem->tv_sec = rem->tv_nsec = 0;
        return 0;
    }
    return real_nanosleep(req, rem);
}

int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem) {
    static int (*real_cns)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!real_cns) real_cns = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    if (fast() && req) {
        long long want = (long long)req->tv_sec * 1000000000LL + req->tv_nsec;
        advance(flags & TIMER_ABSTIME ? want - real_ns(clk) : want);
        return 0;
    }
    return real_cns(clk, flags, req, rem);
}

int usleep(useconds_t usec) {
    static int (*real_usleep)(useconds_t);
    if (!real_usleep) real_usleep = (int (*)(useconds_t))dlsym(RTLD_NEXT, "usleep");
    if (fast()) {
        advance((long long)usec * 1000LL);
        return 0;
    }
    return real_usleep(usec);
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real_gtod)(struct timeval *, void *);
    if (!real_gtod) real_gtod = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int rc = real_gtod(tv, tz);
    if (rc == 0 && fast()) {
        advance(100000LL); /* 100 us per look at the clock: busy-wait loops move on */
        long long us = (long long)tv->tv_sec * 1000000LL + tv->tv_usec + skew_ns / 1000LL;
        tv->tv_sec = us / 1000000LL;
        tv->tv_usec = us % 1000000LL;
    }
    return rc;
}
