"""Shared helpers of the client check scripts: named checks that report
"ok" / "FAIL" and go on, equality with a readable message, and the exit."""
import sys
import traceback

failures = []


def check(label, fn=None):
    """Runs `fn` as the check `label`; without `fn`, a decorator doing so."""
    def run(f):
        try:
            f()
            print("ok   ", label)
        except Exception as e:  # noqa: BLE001 - report every failure
            failures.append(label)
            print("FAIL ", label, "->", type(e).__name__, str(e).strip()[:400])
            traceback.print_exc(limit=2)
        return f
    return run(fn) if fn is not None else run


def eq(got, want):
    if got != want:
        raise AssertionError(f"got {got!r}, want {want!r}")


def finish(what):
    """Exits non-zero if any check failed."""
    if failures:
        print(f"{len(failures)} {what} check(s) failed: {failures}")
        sys.exit(1)
    print(f"all {what} checks passed")
