"""Group commit: many request threads' appends batched into one transaction by one writer thread."""

from __future__ import annotations

from charter.audit.log import AuditLog


class GroupCommitWriter:
    """Appends from many concurrent requests committed together: one writer thread drains the
    queue and appends everything waiting in one transaction (group commit), so under load the
    cost of a durable commit is shared; a lone request waits for its own commit only."""

    def __init__(self, log: AuditLog, max_batch: int = 256):
        import queue
        import threading

        self.log, self.max_batch = log, max_batch
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[tuple[str, dict, str | None, str | None]]):
        """A concurrent.futures.Future resolving to the appended entries."""
        from concurrent.futures import Future

        fut: Future = Future()
        self._queue.put((items, fut))
        return fut

    def append_many(self, items):
        return self.submit(items).result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        import queue

        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            try:
                entries = self.log.append_many([it for items, _ in jobs for it in items])
            except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
                for _, fut in jobs:
                    fut.set_exception(exc)
            else:
                k = 0
                for items, fut in jobs:
                    fut.set_result(entries[k : k + len(items)])
                    k += len(items)
            if stop:
                return
