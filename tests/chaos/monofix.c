/* monofix: keeps CLOCK_MONOTONIC (and every other clock but the wall clock) real under libfaketime.
 *
 * Preloaded in front of libfaketime (LD_PRELOAD=monofix.so:libfaketime.so.1) for a node whose wall clock the
 * fault campaign jumps. libfaketime 0.9.10 offsets every clock, the monotonic ones included, and converts the
 * deadlines it sees back; but it misses sem_clockwait (Python's lock timeouts) and converts the deadline of a
 * pthread_cond_timedwait on a CLOCK_MONOTONIC condition (Python's GIL) as if it were a wall-clock one, so a
 * process with a wall clock behind waits a minute where it meant milliseconds (FAKETIME_DONT_FAKE_MONOTONIC=1
 * makes time.sleep fail with EINVAL instead). A real clock jump moves the wall clock only: so clock_gettime of
 * any clock but the wall clocks, clock_nanosleep on them, and waits on monotonic conditions go straight to the
 * kernel and glibc here; the wall clock (time.time(), gettimeofday, file times) stays libfaketime's.
 * Built by the campaign with `cc -shared -fPIC -O2 -o monofix.so monofix.c -ldl`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int is_wall(clockid_t clk) {
    return clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE || clk == CLOCK_TAI || clk == CLOCK_REALTIME_ALARM;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    static int (*next)(clockid_t, struct timespec *);
    if (!is_wall(clk))
        return (int)syscall(SYS_clock_gettime, clk, ts);
    if (!next)
        next = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return next(clk, ts);
}

int __clock_gettime(clockid_t clk, struct timespec *ts) { return clock_gettime(clk, ts); }

int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem) {
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!is_wall(clk))
        return syscall(SYS_clock_nanosleep, clk, flags, req, rem) == 0 ? 0 : errno;
    if (!next)
        next = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clk, flags, req, rem);
}

int nanosleep(const struct timespec *req, struct timespec *rem) {
    return (int)syscall(SYS_nanosleep, req, rem);
}

/* glibc keeps a condition's clock in bit 1 of __wrefs (nptl/pthread_cond_common.c) */
#define COND_CLOCK_MONOTONIC 2

int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex, const struct timespec *abstime) {
    static int (*libc)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    static int (*next)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    if (cond->__data.__wrefs & COND_CLOCK_MONOTONIC) {
        if (!libc) {
            void *handle = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
            libc = (int (*)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *))dlvsym(
                handle, "pthread_cond_timedwait", "GLIBC_2.3.2");
        }
        return libc(cond, mutex, abstime);
    }
    if (!next)
        next = (int (*)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *))dlvsym(
            RTLD_NEXT, "pthread_cond_timedwait", "GLIBC_2.3.2");
    return next(cond, mutex, abstime);
}
