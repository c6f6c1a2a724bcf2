"""Reading a text file someone else wrote: streamed, UTF-8 checked, every record bounded.

``subscribers import`` used to read the whole file and decode it at once: ``/dev/zero`` or
a 2 GB file without a line break took gigabytes before failing. Here the file is read in
chunks and no line (or quoted multi-line record) may pass ``max_record`` bytes, so memory
stays bounded by that whatever the input, and a wrong file fails at its first long line.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from mailer.errors import InputError

CHUNK = 64 * 1024
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class BoundedLines:
    """The lines of a UTF-8 stream (line ends kept, BOM dropped), each at most ``max_record``.

    ``since_record`` counts the bytes handed out since the reader last called ``new_record``:
    a quoted cell that runs over many short lines is bounded like one long line.
    """

    def __init__(self, stream: BinaryIO, name: str, max_record: int) -> None:
        self.stream = stream
        self.name = name
        self.max_record = max_record
        self.line = 0  # the number of the last line handed out
        self.since_record = 0
        self._record_start = 1  # the line the record being read began on
        self._lines = self._read()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._lines)

    def new_record(self) -> None:
        """The reader finished a record: the next one starts counting from zero."""
        self.since_record = 0
        self._record_start = self.line + 1

    def _read(self) -> Iterator[str]:
        buffer = bytearray()
        first = True
        while chunk := self.stream.read(CHUNK):
            if first:
                chunk = self._check_start(chunk)
                first = False
            buffer += chunk
            start = 0
            while (end := buffer.find(b"\n", start)) != -1:
                yield self._decoded(bytes(buffer[start : end + 1]))
                start = end + 1
            del buffer[:start]
            if len(buffer) > self.max_record:
                self._too_long()
        if buffer:
            yield self._decoded(bytes(buffer))

    def _check_start(self, chunk: bytes) -> bytes:
        if chunk.startswith(_UTF16_BOMS):
            raise InputError(f"{self.name} is UTF-16; save it as 'CSV UTF-8' and import again")
        return chunk.removeprefix(codecs.BOM_UTF8)

    def _decoded(self, data: bytes) -> str:
        self.line += 1
        self.since_record += len(data)
        if len(data) > self.max_record or self.since_record > self.max_record:
            self._too_long()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.name} is not UTF-8 (byte 0x{data[exc.start]:02x} on line {self.line}); "
                "save it as 'CSV UTF-8' and import again"
            ) from None

    def _too_long(self) -> None:
        raise InputError(
            f"line {self._record_start}: unreadable CSV (a record longer than"
            f" {self.max_record:,} bytes; is this a CSV file?"
            " MAILER_IMPORT_MAX_RECORD_BYTES sets the limit); "
            "nothing was imported"
        )
