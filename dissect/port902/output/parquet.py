"""Tables as Parquet (stage: output), with the schema each table declares (``model.schema``).

Every file gets its Arrow types from the declaration rather than from the rows it happens to
hold (an all-empty column would otherwise be typed null and no longer match another file or row
group), each column's doc and declared dtype as field metadata, and pandas' own metadata, so
``pd.read_parquet`` gives the declared dtypes back.  :class:`ParquetSessionStream` writes the
sessions table in row groups while the captures are read (``analyze(emit=...)``), so memory
does not grow with the number of sessions; the archive's dataset writer uses the same schema.
Needs pyarrow (``pip install 'dissect902[parquet]'``).
"""

from __future__ import annotations

from .. import __version__
from ..extras import require
from ..model.schema import SCHEMA_VERSION, SCHEMAS

ROW_GROUP = 10_000  # sessions per row group of a streamed file


def arrow_schema(pa, table: str, frame):
    """The declared schema of ``table`` as Arrow, with each column's doc and declared dtype."""
    declared = SCHEMAS[table]
    base = pa.Schema.from_pandas(frame, preserve_index=False)
    arrow = {"string": pa.string(), "Int64": pa.int64(), "float64": pa.float64(), "boolean": pa.bool_(),
             "category": pa.dictionary(pa.int32(), pa.string()), "datetime64[ns, UTC]": pa.timestamp("ns", tz="UTC")}
    fields = [pa.field(f.name, arrow.get(declared[f.name][0], f.type), nullable=True,
                       metadata={"doc": declared[f.name][1], "dtype": declared[f.name][0]}) for f in base]
    meta = dict(base.metadata or {})
    meta.update({b"dissect902.table": table.encode(), b"dissect902.schema_version": str(SCHEMA_VERSION).encode(),
                 b"dissect902.version": __version__.encode()})
    return pa.schema(fields, metadata=meta)


def write_parquet(analysis, path: str, table: str = "sessions") -> None:
    """One table of a finished analysis as a Parquet file."""
    pa = require("pyarrow", "--format parquet")
    import pyarrow.parquet as pq

    from .render import frame_for
    from .sink import open_output

    frame = frame_for(analysis, table)
    arrow = pa.Table.from_pandas(frame, schema=arrow_schema(pa, table, frame), preserve_index=False)
    with open_output(path, binary=True) as handle:
        pq.write_table(arrow, handle)


class ParquetSessionStream:
    """``analyze -f parquet`` (sessions table) written while the captures are read: finished
    sessions are buffered to :data:`ROW_GROUP` and written as a row group of one file, in the
    order they end.  The file is opened at the first row group (or at the end, empty)."""

    def __init__(self, path: str) -> None:
        self.pa = require("pyarrow", "--format parquet")
        self.path = path
        self.batch: list = []
        self._writer = None
        self._handle = None
        self._stack = None
        self.sessions = self.weird = self.decrypted = 0

    def session(self, rec) -> None:
        self.sessions += 1
        self.weird += len(rec.weird)
        self.decrypted += rec.decryption is not None and rec.decryption.decrypted
        self.batch.append(rec)
        if len(self.batch) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        from .frames import sessions_frame

        frame = sessions_frame(self.batch)
        self.batch = []
        pa = self.pa
        if self._writer is None:
            import pyarrow.parquet as pq
            from contextlib import ExitStack

            from .sink import open_output

            self._schema = arrow_schema(pa, "sessions", frame)
            self._stack = ExitStack()
            self._handle = self._stack.enter_context(open_output(self.path, binary=True))
            self._writer = self._stack.enter_context(pq.ParquetWriter(self._handle, self._schema))
        self._writer.write_table(pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False))

    def finish(self, analysis) -> None:
        """The run's end: the last row group (an empty file keeps the schema); weird rows of no
        session are counted for the command's note."""
        self.weird += len(analysis.weird)
        if self.batch or self._writer is None:
            self._flush()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
