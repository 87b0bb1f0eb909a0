import time

import pytest
import torch


@pytest.fixture
def timed():
    """Best of three single-thread CPU times of ``fn()``, in seconds.

    CPU time of one thread rather than wall time, so the bound means "one core" and does not
    fail when other jobs share the machine (wall time on 2 busy cores can be several times it).
    """

    def run(fn):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        best = float("inf")
        try:
            for _ in range(3):
                t0 = time.process_time()
                with torch.no_grad():
                    fn()
                best = min(best, time.process_time() - t0)
        finally:
            torch.set_num_threads(threads)
        return best

    return run
