/*
 * pause: the process that holds a pod sandbox's namespaces open.
 *
 * It blocks SIGINT, SIGTERM and SIGCHLD and collects them synchronously with
 * rt_sigtimedwait, so no signal handlers (and no sa_restorer trampoline) are
 * needed: SIGINT/SIGTERM end it with status 0, SIGCHLD reaps every exited child
 * (pause is PID 1 of the pod's PID namespace when that namespace is shared).
 *
 * Built freestanding (-nostdlib, raw syscalls) so the static binary stays a few KB.
 */

#define PR_SET_DUMPABLE 4
#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17
#define SIG_BLOCK 0
#define WNOHANG 1

#if defined(__x86_64__)
#define SYS_prctl 157
#define SYS_rt_sigprocmask 14
#define SYS_wait4 61
#define SYS_exit_group 231
#define SYS_rt_sigtimedwait 128

static long sys4(long n, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
#define SYS_prctl 167
#define SYS_rt_sigprocmask 135
#define SYS_wait4 260
#define SYS_exit_group 94
#define SYS_rt_sigtimedwait 137

static long sys4(long n, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
			 : "memory");
	return x0;
}
#else
#error "pause: unsupported architecture"
#endif

/* The kernel's sigset_t is 64 bits on these architectures. */
#define SIGBIT(s) (1UL << ((s) - 1))

static void reap(void)
{
	/* wait4(-1, NULL, WNOHANG, NULL) until no exited child is left. */
	while (sys4(SYS_wait4, -1, 0, WNOHANG, 0) > 0)
		;
}

__attribute__((noreturn)) void _start(void)
{
	unsigned long set = SIGBIT(SIGINT) | SIGBIT(SIGTERM) | SIGBIT(SIGCHLD);

	/*
	 * Not dumpable: the pod's other processes, which share its PID namespace and may
	 * share its user, cannot ptrace it or open its /proc/1/root and /proc/1/ns links.
	 */
	sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0);
	sys4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, sizeof(set));
	for (;;) {
		long sig = sys4(SYS_rt_sigtimedwait, (long)&set, 0, 0, sizeof(set));
		if (sig == SIGINT || sig == SIGTERM)
			sys4(SYS_exit_group, 0, 0, 0, 0);
		if (sig == SIGCHLD)
			reap();
	}
}
