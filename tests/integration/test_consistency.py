"""What a worker answers agrees with itself while other workers commit: a fetch never returns a
record at or above the high watermark it reports, and ListOffsets LATEST on the same connection is
never below an offset a fetch there has already served."""
import threading
import time

import kwire
from harness import Agent, expect


def test_fetch_stays_below_its_high_watermark_and_list_offsets_keeps_up():
    # Steering off: connections land on any worker, so most checks run on workers that did not
    # write the data and learn of it from the store.
    a = Agent(env={"SLUICE_WORKERS": "2", "SLUICE_STEERING": "off", "SLUICE_BATCH_TIMEOUT": "2ms"})
    a.start()
    stop = threading.Event()
    produced = [0]
    try:
        def produce():
            socks = [kwire.connect(a.port) for _ in range(4)]  # on both workers
            i = 0
            while not stop.is_set():
                s = socks[i % len(socks)]
                s.sendall(kwire.request(0, 3, i, kwire.produce_v3_body("hw", 0, kwire.record_batch([b"v%d" % i]))))
                _, res = kwire.parse_produce_v3_response(kwire.read_frame(s))
                expect(res[0][2] == 0, "produce failed: %r" % (res,))
                produced[0] += 1
                i += 1
            for s in socks:
                s.close()

        with kwire.connect(a.port) as s:  # the topic exists (Metadata creates it) and holds a record
            s.sendall(kwire.request(3, 1, 0, kwire.metadata_v1_body(["hw"])))
            kwire.read_frame(s)
            s.sendall(kwire.request(0, 3, 1, kwire.produce_v3_body("hw", 0, kwire.record_batch([b"first"]))))
            _, res = kwire.parse_produce_v3_response(kwire.read_frame(s))
            expect(res[0][2] == 0, "first produce failed: %r" % (res,))
        t = threading.Thread(target=produce)
        t.start()
        checks = violations = 0
        problems = []
        conns = [kwire.connect(a.port) for _ in range(6)]
        served = [0] * len(conns)  # per connection: the highest offset a fetch has returned + 1
        nxt = [0] * len(conns)
        end = time.time() + 5
        corr = 100
        while time.time() < end:
            for k, s in enumerate(conns):
                corr += 1
                s.sendall(kwire.request(1, 4, corr, kwire.fetch_v4_body("hw", 0, nxt[k], max_wait_ms=0)))
                _, err, hwm, records = kwire.parse_fetch_v4_response(kwire.read_frame(s))
                expect(err == 0, "fetch error %d" % err)
                for base, last in kwire.batches(records):
                    if last >= hwm:
                        violations += 1
                        problems.append("fetch returned offset %d with high watermark %d" % (last, hwm))
                    served[k] = max(served[k], last + 1)
                    nxt[k] = max(nxt[k], last + 1)
                corr += 1
                s.sendall(kwire.request(2, 1, corr, kwire.list_offsets_v1_body("hw", 0, -1)))
                err, latest = kwire.parse_list_offsets_v1_response(kwire.read_frame(s))
                expect(err == 0, "ListOffsets error %d" % err)
                if latest < served[k]:
                    violations += 1
                    problems.append("ListOffsets LATEST %d after a fetch served up to %d" % (latest, served[k] - 1))
                checks += 1
        stop.set()
        t.join(10)
        for s in conns:
            s.close()
        print("    %d fetch + ListOffsets pairs on 6 connections while %d records were produced: %d violations"
              % (checks, produced[0], violations))
        expect(produced[0] > 100 and checks > 100, "too little happened (%d produced, %d checks)"
               % (produced[0], checks))
        expect(violations == 0, "%d violations, e.g. %r" % (violations, problems[:3]))
    finally:
        stop.set()
        a.cleanup()
