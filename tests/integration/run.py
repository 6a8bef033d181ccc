#!/usr/bin/python3
"""Runs every test_* function of tests/integration/test_*.py; prints one line per test and a
closing "integration: N passed, N failed, N skipped". Arguments: substrings of test names to run."""
import importlib.util
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def main():
    filters = sys.argv[1:]
    passed = failed = skipped = 0
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fname[:-3], os.path.join(HERE, fname))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = "%s.%s" % (fname[:-3], name)
            if filters and not any(f in full for f in filters):
                continue
            t0 = time.time()
            try:
                getattr(mod, name)()
                passed += 1
                print("ok   %s (%.1fs)" % (full, time.time() - t0), flush=True)
            except harness.Skip as e:
                skipped += 1
                print("skip %s: %s" % (full, e), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s (%.1fs)" % (full, time.time() - t0), flush=True)
                traceback.print_exc()
                sys.stdout.flush()
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
