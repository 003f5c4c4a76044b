"""Library threads keep their Python thread state between callbacks."""

import threading

import net_mesh as nm
from net_mesh import _daemon


def test_threading_local_survives_between_callbacks_on_a_library_thread(rt):
    # Without a kept thread state, each callback on a library thread gets a
    # fresh one and threading.local data set in the previous callback there
    # is gone.
    local = threading.local()
    seen = []
    main = threading.get_ident()
    for _ in range(100):
        done = threading.Event()

        def task(done=done):
            seen.append((threading.get_ident(), getattr(local, "mark", None)))
            local.mark = threading.get_ident()
            done.set()

        rt.submit(task)
        assert done.wait(10)
    idents = [t for t, _ in seen]
    assert main not in idents, "tasks run on library threads"
    assert all(t in _daemon.KEPT_THREADS for t in idents)
    first = {}
    repeats = 0
    for t, mark in seen:
        if t in first:
            repeats += 1
            assert mark == t, "a later callback on the same thread sees the thread's local data"
        else:
            first[t] = True
            assert mark is None
    assert repeats > 0, "some library thread ran more than one task"


def test_callbacks_on_many_library_threads_at_once(rt):
    # tasks run concurrently on the pool; each thread keeps its state once
    n = 400
    lock = threading.Lock()
    count = [0]
    done = threading.Event()

    def task():
        with lock:
            count[0] += 1
            if count[0] == n:
                done.set()

    for _ in range(n):
        while True:
            try:
                rt.submit(task)
                break
            except nm.QueueFullError:
                threading.Event().wait(0.001)
    assert done.wait(30)
    assert count[0] == n
