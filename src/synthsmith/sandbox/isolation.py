"""Kernel isolation for a sandbox worker, paid once per worker, inherited by every job it forks.

Stdlib-only (the harness loads this file by path, without site-packages or our package).

A worker enters new network, mount, PID, IPC and UTS namespaces: no interface is up (not even
loopback), /proc shows only the worker's own processes, the host's root filesystem is read-only,
/dev/shm is a private tmpfs. A worker mounts two tmpfs of its own, once: `scratch` (batch inputs,
outputs and statuses; private to the worker, never on the host's disk) and `work` (size-capped;
each job's working directory is a fresh empty directory there, removed with everything in it
when the job ends). Jobs run under a uid of their own with no capabilities (as root: an
unprivileged uid; as a normal user: a user namespace, capabilities dropped). Every step that
the OS refuses is reported by name with its error, never skipped silently: `Isolation.report`
is what the user sees.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
# statvfs f_flag bit -> mount flag: a remount must keep these, a user namespace refuses to change them
_KEPT_FLAGS = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}
PR_SET_NO_NEW_PRIVS = 38
JOB_UID_BASE = 200_000  # + the worker's host pid: a uid no account and no other live worker has
# Jobs' working directories: capped, in memory. One job at a time per worker, so the cap is a job's.
# mode 0711: a job reaches its own directory but cannot list or create beside it.
WORK_TMPFS = "size=64m,nr_inodes=4096,mode=0711"
# Batch files: jobs open their stdio before dropping rights; after, they reach only their solution.py.
SCRATCH_TMPFS = "mode=0711"
SHM_TMPFS = "size=64m,nr_inodes=1024,mode=1777"
HOME_TMPFS = "size=1m,nr_inodes=1024,mode=0755"

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {target}")


def _kept_flags(path: str) -> int:
    current = os.statvfs(path).f_flag
    return sum(flag for bit, flag in _KEPT_FLAGS.items() if current & bit)


def _remount_read_only(path: str) -> None:
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(path))


def _bind(fd: int, path: str, read_only: bool) -> None:
    os.makedirs(path, exist_ok=True)  # a mount point inside a hidden home's empty tmpfs
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    if read_only:
        _remount_read_only(path)


class Isolation:
    """What this worker got. `report` maps each protection to 'on: ...' or 'OFF: <reason>'."""

    def __init__(self) -> None:
        self.report: dict[str, str] = {}
        self.mounts = False  # own mount namespace: tmpfs and a read-only root are possible
        self.empty_shm_size = 0  # the size of our own /dev/shm tmpfs while empty (set once it is mounted)
        self.job_uid: int | None = None  # jobs switch to this uid (root tier)
        self.drop_caps = False  # jobs drop every capability (user-namespace tier)

    def enter(self, sandbox_dir: str) -> bool:
        """Unshare; returns True in the process that must fork the PID namespace's init."""
        root = os.geteuid() == 0
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        uid, gid = os.getuid(), os.getgid()
        try:
            _check(_libc.unshare(flags if root else flags | CLONE_NEWUSER), "unshare")
        except OSError as exc:
            for name in ("network", "processes", "filesystem"):
                self.report[name] = f"OFF: {exc.strerror} ({'as root' if root else 'no user namespaces'})"
            self._users(root)
            return False
        if not root:  # we are uid 0 of the new user namespace, mapped to our own uid outside
            for path, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
                with open(f"/proc/self/{path}", "w") as f:
                    f.write(text)
        self.report["network"] = "on: own network namespace, no interface up"
        self.mounts = True
        self._users(root)
        return True

    def _users(self, root: bool) -> None:
        if root:
            self.job_uid = JOB_UID_BASE + os.getpid()
            self.report["user"] = f"on: jobs run as uid {self.job_uid} without capabilities"
        elif self.mounts:
            self.drop_caps = True
            self.report["user"] = "on: jobs run in a user namespace without capabilities"
        else:
            self.report["user"] = "OFF: jobs run as the calling user (not root, no user namespaces)"

    def as_init(self, sandbox_dir: str, homes: list[str], libraries: list[str]) -> None:
        """In the PID namespace's init: private /proc; the host read-only; `homes` hidden under an
        empty read-only tmpfs (dotfiles hold credentials too); `libraries` (the stdlib, which may
        live under a home) visible read-only; the sandbox directory writable; private /dev/shm."""
        if not self.mounts:
            self.report["secrets"] = "OFF: environment allow-list only; homes not hidden (no mount namespace)"
            return
        homes = [home for home in dict.fromkeys(homes) if home != "/" and os.path.isdir(home)]
        exposed = {path: os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # reachable once hidden
                   for path in dict.fromkeys([sandbox_dir, *libraries]) if os.path.isdir(path)}
        steps = [("processes", lambda: _mount(None, "/", None, MS_REC | MS_PRIVATE)),
                 ("processes", lambda: _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC))]
        steps += [("secrets", lambda home=home: _mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, HOME_TMPFS))
                  for home in homes]
        for path, fd in exposed.items():
            steps.append(("filesystem", lambda path=path, fd=fd: _bind(fd, path, read_only=path != sandbox_dir)))
        steps += [("filesystem", lambda: _remount_read_only("/"))]
        steps += [("secrets", lambda home=home: _remount_read_only(home)) for home in homes]
        steps += [("filesystem", lambda: _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, SHM_TMPFS))]
        for name, step in steps:
            try:
                step()
            except OSError as exc:
                self.report.setdefault(name, f"OFF: {exc}")
        for fd in exposed.values():
            os.close(fd)
        self.report.setdefault("processes", "on: own PID namespace, /proc shows only the sandbox")
        self.report.setdefault("filesystem", "on: host filesystem read-only, a fresh capped working directory per job")
        self.report.setdefault("secrets", f"on: environment allow-list; {', '.join(homes) or 'no home'} hidden")
        self.mounts = self.report["filesystem"].startswith("on")
        self.empty_shm_size = os.stat("/dev/shm").st_size

    def make_dirs(self, sandbox_dir: str, host_pid: int) -> tuple[str, str]:
        """(scratch, work) for this worker, in `sandbox_dir` (which the pool removes): tmpfs mounted
        once where the worker has a mount namespace, plain directories where it has none."""
        base = os.path.join(sandbox_dir, f"worker-{host_pid}")
        scratch, work = os.path.join(base, "scratch"), os.path.join(base, "work")
        for path, options in ((scratch, SCRATCH_TMPFS), (work, WORK_TMPFS)):
            os.makedirs(path, 0o711)  # each worker's tmpfs is in its own mount namespace: no other sees it
            if self.mounts:
                _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
        return scratch, work

    def make_workdir(self, path: str) -> None:
        """A fresh, empty working directory owned by the job's uid."""
        os.mkdir(path, 0o700)
        if self.job_uid is not None:
            os.chown(path, self.job_uid, self.job_uid)

    def remove_workdir(self, path: str) -> None:
        """The job's directory and everything in it; what it left in /dev/shm too. shutil is
        imported only when a job left a tree: the supervisor, a fresh fork per batch, would
        otherwise import it for every batch."""
        try:
            os.rmdir(path)  # the usual case: the job wrote nothing
        except OSError:
            import shutil
            shutil.rmtree(path, ignore_errors=True)
        # What a job left in the worker's /dev/shm must not reach the next job. A tmpfs directory's
        # size grows with each entry, so one stat tells whether there is anything to remove.
        if self.mounts and os.stat("/dev/shm").st_size != self.empty_shm_size:
            for entry in os.scandir("/dev/shm"):
                if entry.is_dir(follow_symlinks=False):
                    import shutil
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)

    def forbid_new_privileges(self) -> None:
        """No process of this worker, jobs included (they inherit it), can gain rights through
        exec (setuid binaries, file capabilities): set once here, not in every job."""
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")

    def drop_privileges(self) -> None:
        """In the job child, last step before the untrusted code: no way back to our rights."""
        if self.job_uid is not None:
            os.setgroups([])
            os.setresgid(self.job_uid, self.job_uid, self.job_uid)
            os.setresuid(self.job_uid, self.job_uid, self.job_uid)  # from uid 0: every capability goes
        elif self.drop_caps:
            _drop_capabilities()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit data words
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
