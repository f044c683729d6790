"""Bootstrap of the code-judge sandbox: the first code the sandboxed interpreter runs (`python -I -S -c <this file>`).

It is trusted; everything after `_run_job` starts is not. Before any untrusted code runs it:

1. reads the job (solution, tests, limits) from a file the untrusted code can no longer reach afterwards;
2. lowers resource limits (CPU seconds, address space, processes, file size, open files, no core dumps); only
   raising a hard limit needs a privilege, so the untrusted code cannot undo them;
3. applies a Landlock ruleset where the kernel has one (Linux >= 5.13): reads only below the Python installation,
   the system library directories and the work directory, writes only below the work directory, no TCP
   connect/bind (ABI >= 4), no signals to processes outside the sandbox (ABI >= 6). This is a kernel boundary;
4. applies a seccomp filter that refuses fork, exec and new processes (threads still work);
5. installs an audit hook (PEP 578) that refuses sockets, subprocesses, fork, exec, kill, ctypes and file access
   outside the same allowlist. Audit hooks are NOT a security boundary (code in the same interpreter can get
   around them); they are a second layer where Landlock is missing and a source of clear error messages.

Only the standard library is used: `-S` keeps site-packages off `sys.path`.
The last line printed on success is a nonce the untrusted code is not given, so `sys.exit(0)` or `os._exit(0)`
before the tests run cannot pass them. It stops accidental and naive early exits only: frames (`sys._getframe`, which
namedtuple, enum and typing need) lead back to this module's locals, so code that hunts for the nonce can find it.
"""

import builtins
import io
import json
import os
import resource
import sys

# ----------------------------------------------------------------------------------------------- limits


def _set_limits(limits, layers):
    mib = 1024 * 1024
    wanted = [
        (resource.RLIMIT_CPU, limits["cpu_seconds"]),
        (resource.RLIMIT_AS, limits["memory_mb"] * mib),
        (resource.RLIMIT_FSIZE, limits["file_size_mb"] * mib),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_CORE, 0),
    ]
    for kind, value in wanted:
        # soft == hard: at the CPU limit the kernel sends SIGKILL at once, not a catchable SIGXCPU first.
        resource.setrlimit(kind, (value, value))
    layers.append("rlimits")


# --------------------------------------------------------------------------------------------- landlock


def _libc():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return None
    libc.syscall.restype = ctypes.c_long
    return libc


_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same number on every architecture
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}  # >= 5: 16 bits
_FILE_ONLY_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (1 << 14) | (1 << 15)  # valid on a file rule


def _landlock(libc, work, read_roots, layers):
    import ctypes
    import struct

    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # 1: ask for the ABI
    if abi < 1:
        return  # no Landlock in this kernel (or disabled): the audit hook and rlimits still apply
    fs_all = _FS_RIGHTS_BY_ABI.get(abi, (1 << 16) - 1)
    net = 3 if abi >= 4 else 0  # handle TCP bind + connect and allow none
    scoped = 3 if abi >= 6 else 0  # abstract unix sockets + signals stay inside the sandbox
    attr = struct.pack("=QQQ", fs_all, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = libc.syscall(_SYS_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    rules = [(root, read) for root in read_roots] + [(work, fs_all), ("/dev/null", _FS_READ_FILE | _FS_WRITE_FILE)]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        if not os.path.isdir(path):
            access &= _FILE_ONLY_RIGHTS
        rule = struct.pack("=Qi", access & fs_all, fd)
        libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), rule, ctypes.c_uint32(0))
        os.close(fd)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) == 0:
        layers.append(f"landlock-abi{abi}")
    os.close(ruleset)


# ---------------------------------------------------------------------------------------------- seccomp
# RLIMIT_NPROC does not bind real root (the kernel exempts uid 0 even inside a user namespace), so process creation
# is refused by a seccomp filter instead: fork, vfork, clone without CLONE_THREAD (threads still work), execve and
# execveat fail with EPERM; clone3 fails with ENOSYS so the C library falls back to clone, whose flags BPF can read.
_SECCOMP = {  # machine: (audit arch, fork, vfork, clone, clone3, execve, execveat); -1 = no such system call
    "x86_64": (0xC000003E, 57, 58, 56, 435, 59, 322),
    "aarch64": (0xC00000B7, -1, -1, 220, 435, 221, 281),
}
_CLONE_THREAD = 0x00010000


def _seccomp(libc, layers):
    import ctypes
    import platform
    import struct

    numbers = _SECCOMP.get(platform.machine())
    if numbers is None:
        return
    arch, fork, vfork, clone, clone3, execve, execveat = numbers
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06

    def op(code, k, jt=0, jf=0):
        return (code, jt, jf, k)

    denied = [n for n in (fork, vfork, execve, execveat) if n >= 0]
    # Another ABI's system calls (i386 on x86_64, x32) have other numbers: refuse them all.
    program = [op(ld_abs, 4), op(jeq, arch, 1, 0), op(ret, eperm), op(ld_abs, 0), op(jge, 0x40000000, 0, 1),
               op(ret, eperm)]  # fmt: skip
    for number in denied:
        program += [op(jeq, number, 0, 1), op(ret, eperm)]
    program += [op(jeq, clone3, 0, 1), op(ret, enosys), op(jeq, clone, 0, 3), op(ld_abs, 16),
                op(jset, _CLONE_THREAD, 1, 0), op(ret, eperm), op(ret, allow)]  # fmt: skip
    filters = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(filters, len(filters))
    fprog = struct.pack("=HxxxxxxQ", len(program), ctypes.addressof(buffer))
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        layers.append("seccomp")


# ------------------------------------------------------------------------------------------- audit hook

_DENY = frozenset({
    "socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg",
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill", "os.setuid", "os.setreuid", "os.setgid",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "os.symlink", "os.link", "os.chmod", "os.chown", "os.chroot", "resource.setrlimit", "resource.prlimit",
    "sys.setprofile", "sys.settrace", "sys.addaudithook", "shutil.unpack_archive",
})  # fmt: skip

_WRITE_EVENTS = frozenset({"os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.truncate", "os.utime", "shutil.rmtree"})
_LIST_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.chdir"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _audit(work, read_roots, layers):
    realpath, fspath, startswith = os.path.realpath, os.fspath, str.startswith  # bound now: later patches don't matter
    write_roots = (work + os.sep, "/dev/null")
    read_roots = tuple(r.rstrip(os.sep) + os.sep for r in read_roots) + write_roots + ("/dev/urandom",)

    def under(path, roots):
        if isinstance(path, int):  # an already-open descriptor: nothing new is reached
            return True
        try:
            path = realpath(fspath(path))
        except (TypeError, ValueError):
            return False
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        return path == work or any(startswith(path, r) or path == r.rstrip(os.sep) for r in roots)

    def hook(event, args):
        if event in _DENY or event.startswith("ctypes."):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
            if not under(path, write_roots if writing else read_roots):
                raise PermissionError(f"sandbox: {'writing' if writing else 'reading'} {path!r} is not allowed")
        elif event in _WRITE_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and not under(path, write_roots):
                    raise PermissionError(f"sandbox: {event} on {path!r} is not allowed")
        elif event in _LIST_EVENTS:
            if args and args[0] is not None and not under(args[0], read_roots):
                raise PermissionError(f"sandbox: {event} on {args[0]!r} is not allowed")

    sys.addaudithook(hook)
    layers.append("audit-hook")


# ------------------------------------------------------------------------------------------------- jobs
# The untrusted code shares this interpreter: it can rebind `builtins.str` or `os.write`. Everything the verdict
# depends on is bound here, before it runs, and the builtins are restored after every run.
_str, _list, _isinstance, _write, _exit, _repr = str, list, isinstance, os.write, os._exit, repr
builtins.exit = builtins.quit = sys.exit  # type: ignore[assignment]  # `site` adds these; -S skips it
_BUILTINS = dict(builtins.__dict__)


def _lines(text, _str=_str, _list=_list):
    return _list(_str.rstrip(line) for line in _str.splitlines(_str.strip(_str(text))))


def _fresh_main():
    """A new `__main__` module for the untrusted code (the bootstrap's own module stays out of its reach)."""
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def _restore_builtins():
    builtins.__dict__.clear()
    builtins.__dict__.update(_BUILTINS)


def _run_program(code, stdin_text, _StringIO=io.StringIO):
    """Run a stdin/stdout program once; returns what it printed. `exit()` at the end of a script is normal."""
    real_in, real_out = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = _StringIO(stdin_text), _StringIO()
    capture = sys.stdout
    try:
        exec(code, _fresh_main())
    except SystemExit:
        pass
    finally:
        sys.stdin, sys.stdout = real_in, real_out
        _restore_builtins()
    return capture.getvalue() if _isinstance(capture, _StringIO) else ""


def _run_job(job):
    solution = compile(job["solution"], "<solution>", "exec")
    cases = job.get("io_cases")
    if cases is not None:
        for i, (given, expected) in enumerate(cases):
            got = _run_program(solution, given)
            if _lines(got) != _lines(expected):
                message = f"case {i}: expected {_repr(_str(expected)[:200])}, got {_repr(got[:200])}\n"
                _write(2, message.encode("utf-8", "replace"))
                return False
        return True
    tests = compile(job["tests"] or "", "<tests>", "exec")
    namespace = _fresh_main()
    try:
        exec(solution, namespace)
    except SystemExit:
        pass  # a script that ends with exit(): its definitions are in place, the tests still decide
    _restore_builtins()  # the tests see the real builtins (names the solution defines itself it may shadow)
    exec(tests, namespace)
    return True


def _describe(err):
    """The error and the innermost line of the solution or the tests it came from."""
    tb, where = err.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("<solution>", "<tests>"):
            where = f" ({name[1:-1]} line {tb.tb_lineno})"
        tb = tb.tb_next
    return f"{type(err).__name__}: {str(err)[:300]}{where}"


def main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    nonce = job.pop("nonce")
    layers = []
    _set_limits(job["limits"], layers)
    libc = _libc()
    for wanted, harden in ((job["landlock"], lambda: _landlock(libc, job["work"], job["read_roots"], layers)),
                           (job["seccomp"], lambda: _seccomp(libc, layers))):  # fmt: skip
        if wanted and libc is not None:
            try:
                harden()
            except (AttributeError, OSError, ValueError):  # not Linux, or an old kernel: the layer is skipped
                pass
    if job["audit_hook"]:
        _audit(job["work"], job["read_roots"], layers)
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]  # a fresh `import ctypes` must go through dlopen, which the hook refuses
    sys.stderr.write(json.dumps({"sandbox_layers": layers}) + "\n")
    sys.stderr.flush()
    try:
        passed = _run_job(job)
    except BaseException as err:  # noqa: BLE001 - any failure of the untrusted code is a failed test
        _restore_builtins()
        _write(2, (_describe(err) + "\n").encode("utf-8", "replace"))
        passed = False
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - the untrusted code may have replaced or closed stdout
        pass
    if passed:
        _write(1, ("\n" + nonce + "\n").encode())
    _exit(0 if passed else 1)


main()
