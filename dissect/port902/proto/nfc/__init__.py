"""Cleartext NFC (Network File Copy): classic 264-byte messages and VDDK "AIO" frames.

Protocol: VMware NFC as spoken after authd's ``200 Connect ha-nfc`` when no second
TLS wraps it (VDDK transport "nbd", nfclib / photon-controller file copies).
Spec: protocol.md §5.4 (classic messages: a fixed 264-byte block, u32 LE type at
offset 0, type-specific fields, then variable extras *not* counted in the 264) and
§5.5 (after the type-52 exchange: 16-byte AIO header {magic 0xA100DA7A, type, size,
opId}, ``size`` payload bytes, then extras not counted in ``size``); protocol.md
§11.4-11.6 for the sequences.

Pipeline stage: one direction's reassembled TCP bytes (after TLS #1 ended, see
``tls.TlsEnd``) -> NFC events for the session state machine.  File data is counted
and skipped, never buffered, so a multi-GB disk copy costs O(1) memory.

Which side carries data (the rule the parser applies; role = "client"/"server"):

* classic NFC_FILE_DATA (7): always ``8 + dataLength`` extra bytes, either side.
* classic NFC_FSSRVR_IO (23): the client's write (direction 1) carries ``length`` bytes;
  a server reply with direction 0 (a read) carries them back (inference from the
  request layout; photon only shows writes).
* AIO IO (7): the 44-byte payload describes one fragment.  Data follows on *writes
  from the client* and on *read replies from the server*; a read request and a write
  ack carry none although their length fields are set.  The data size is the u32 at
  payload offset 36 ("extra size": the fragment length at offset 32 when uncompressed,
  the packed size when the opcode's high half names a compression).  Without a role,
  a non-zero handle at offset 0 marks a client request (replies zero it).
* AIO OPEN_FILE (4): the client's request is followed by ``pathLen`` (u32 @0) path
  bytes; the 60-byte reply has none.  AIO ERROR (1): text of the length at payload @12.
* AIO DDB_GET (11) / GET_FILE_INFO (10): no public length field for the key/value
  extra; it is delimited by the next AIO magic.

Modules: ``wire`` (structures and names), ``detect`` (``looks_like_nfc``), ``events``, ``stream``
(``NfcDirection``, the incremental parser).
"""

from .detect import looks_like_nfc
from .events import NfcAio, NfcMessage, NfcWeird
from .stream import NfcDirection
from .wire import (
    AIO_CLOSE_FILE,
    AIO_ERROR,
    AIO_HEADER,
    AIO_IO,
    AIO_IO_OPS,
    AIO_MAGIC,
    AIO_MAGIC_BYTES,
    AIO_OPEN_FILE,
    AIO_OPEN_FILE_REPLY,
    AIO_TYPES,
    COMPRESSION,
    CONNECTION_DATA,
    CONVERSION_FLAGS,
    CREATEDIR,
    ERROR,
    FEATURES,
    FILE_DATA_HEADER,
    FILE_DATA_MAGIC,
    FILE_GET,
    FILE_PUT,
    FILE_TYPES,
    FILEOP_STATUS,
    FSSRVR_IO,
    FSSRVR_OPEN,
    MESSAGE_SIZE,
    MESSAGE_TYPE,
    MESSAGE_TYPES,
    NAME_LIST,
    VERSION,
)

__all__ = [
    "MESSAGE_TYPES", "AIO_TYPES", "FILE_TYPES", "CONVERSION_FLAGS", "AIO_IO_OPS", "COMPRESSION",
    "MESSAGE_SIZE", "AIO_MAGIC", "AIO_MAGIC_BYTES", "FILE_DATA_MAGIC",
    "MESSAGE_TYPE", "FILE_PUT", "FILE_GET", "FILE_DATA_HEADER", "ERROR", "FSSRVR_OPEN",
    "FSSRVR_IO", "NAME_LIST", "CREATEDIR", "FILEOP_STATUS", "VERSION", "CONNECTION_DATA",
    "FEATURES", "AIO_HEADER", "AIO_ERROR", "AIO_OPEN_FILE", "AIO_OPEN_FILE_REPLY", "AIO_IO",
    "AIO_CLOSE_FILE",
    "looks_like_nfc", "NfcMessage", "NfcAio", "NfcWeird", "NfcDirection",
]
