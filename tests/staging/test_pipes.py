"""PipeReader: reads everything, counts it, ends at end of file."""

from __future__ import annotations

import os
import threading

from aglacier.staging.pipes import PIPE_SIZE, PipeReader, enlarge_pipe
from aglacier.units import MiB


def test_pipe_reader_reads_a_slow_writer_to_the_end() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb", buffering=0) as read_end:
        enlarge_pipe(read_end)
        reader = PipeReader(read_end)
        data = os.urandom(3 * MiB + 5)

        def write() -> None:
            with os.fdopen(write_fd, "wb", buffering=0) as write_end:
                for start in range(0, len(data), 8192):  # like gpg: 8 KiB writes
                    write_end.write(data[start : start + 8192])

        writer = threading.Thread(target=write)
        writer.start()
        chunks = []
        while chunk := reader.read(PIPE_SIZE):
            chunks.append(chunk)
        writer.join()
    assert b"".join(chunks) == data
    assert reader.count == len(data)
    assert reader.thread is threading.current_thread()
    assert len(chunks) < len(data) // 8192  # gulps, not one read per write
