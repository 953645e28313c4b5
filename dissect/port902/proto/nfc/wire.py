"""NFC wire structures and value names: classic 264-byte messages and VDDK AIO frames.

Layouts and numbers from the protocol notes (protocol.md §6: nfclib's message types, FILE_PUT /
FILE_DATA, the AIO header and its payloads); names as nfclib spells them.
"""

from __future__ import annotations

import struct

# ---------------------------------------------------------------------------------------------
# Wire structures, little-endian, in wire order; offsets are relative to the 264-byte block
# ---------------------------------------------------------------------------------------------

MESSAGE_SIZE = 264
AIO_MAGIC = 0xA100DA7A
AIO_MAGIC_BYTES = struct.pack("<I", AIO_MAGIC)  # 7a da 00 a1
FILE_DATA_MAGIC = 0xABCDEFAB
_FILE_DATA_MAGIC_BYTES = struct.pack("<I", FILE_DATA_MAGIC)

#: u32 type, the first field of every classic message.
MESSAGE_TYPE = struct.Struct("<I")
#: NFC_FILE_PUT: type, fileType, conversionFlags, pathLen, fileSize, spaceRequired, then (server
#: replies to GET) parentPathLen, rdmDevicePathLen, isPassthrough, storagePolicyLen — packed.
FILE_PUT = struct.Struct("<IIIIQQIIBI")
#: NFC_FILE_GET: type, fileType, pathLen, conversionFlags.
FILE_GET = struct.Struct("<IIII")
#: After the NFC_FILE_DATA block: magic 0xABCDEFAB, dataLength.
FILE_DATA_HEADER = struct.Struct("<II")
#: NFC_ERROR: type, errorType, errorCode, msgLen.
ERROR = struct.Struct("<IIII")
#: NFC_FSSRVR_OPEN: type, pathLen, openFlags, rawFile.
FSSRVR_OPEN = struct.Struct("<IIIB")
#: NFC_FSSRVR_IO: type, direction (1 = write), byte offset ("lba"), length.
FSSRVR_IO = struct.Struct("<IIQI")
#: NFC_FILE_DELETE / RENAME / COPY: type, size (of the NUL-separated names), flags, count.
NAME_LIST = struct.Struct("<IIIH")
#: NFC_FILE_CREATEDIR: type, pathLen, flags, count.
CREATEDIR = struct.Struct("<IIIH")
#: NFC_FILEOP_STATUS: type, errorSize, dataSize, failed, succeeded.
FILEOP_STATUS = struct.Struct("<IIIHH")
#: Type 51 (version): type, version.
VERSION = struct.Struct("<II")
#: Type 54 (connection data): type, nameLen, opIdLen; the two raw strings follow.
CONNECTION_DATA = struct.Struct("<III")
#: Type 55 (session features): type, features.
FEATURES = struct.Struct("<II")

#: AIO frame header: magic, type, size (payload bytes after the header), opId.
AIO_HEADER = struct.Struct("<IIII")
#: AIO ERROR payload: code, reserved, textLength (text follows).
AIO_ERROR = struct.Struct("<QII")
#: AIO OPEN_FILE request (first 24 of 60 bytes): pathLen, 3 reserved, fileType, flags.
AIO_OPEN_FILE = struct.Struct("<IIIIII")
#: AIO OPEN_FILE reply (first 40 of 60 bytes): status, handle, fileType, flags, sectorSize @36.
AIO_OPEN_FILE_REPLY = struct.Struct("<QQII12xI")
#: AIO IO: handle, opcode (low half 0 write / 1 read, high half compression), byte offset,
#: total length, fragment offset, fragment length, extra (wire) size, reserved.
AIO_IO = struct.Struct("<QQQIIIII")
#: AIO CLOSE_FILE: handle.
AIO_CLOSE_FILE = struct.Struct("<Q")
_U64 = struct.Struct("<Q")

# ---------------------------------------------------------------------------------------------
# Value names
# ---------------------------------------------------------------------------------------------

#: Classic message types (VMware nfclib constants; 51-55 named after the VDDK write-up).
MESSAGE_TYPES = {
    0: "NFC_HANDSHAKE", 1: "NFC_FILE_PUT", 2: "NFC_FILE_GET", 3: "NFC_FILE_COMPLETE",
    4: "NFC_SESSION_COMPLETE", 6: "NFC_RATE_CONTROL", 7: "NFC_FILE_DATA", 8: "NFC_PING",
    20: "NFC_ERROR", 21: "NFC_FSSRVR_OPEN", 22: "NFC_FSSRVR_DISKGEO", 23: "NFC_FSSRVR_IO",
    24: "NFC_FSSRVR_CLOSE", 25: "NFC_PUTFILESINFO", 26: "NFC_GETFILESINFO",
    27: "NFC_PUTFILE_DONE", 28: "NFC_FSSRVR_DDBENUM", 29: "NFC_FSSRVR_DDBGET",
    30: "NFC_FSSRVR_DDBSET", 31: "NFC_FILE_DELETE", 32: "NFC_FILE_RENAME", 33: "NFC_FILE_COPY",
    34: "NFC_FILE_CREATEDIR", 36: "NFC_FILEOP_STATUS", 37: "NFC_ENUM_DISKEXTS",
    38: "NFC_FILENAME_LIST", 39: "NFC_FSSRVR_MULTIIO", 40: "NFC_FSSRVR_ASM_MAP",
    41: "NFC_FSSRVR_CHM_MAP", 42: "NFC_FSSRVR_DDBREMOVE", 43: "NFC_CLIENTRANDOM",
    44: "NFC_FSSRVR_UNMAP", 45: "NFC_FSSRVR_CKSM_XTNT", 46: "NFC_FSSRVR_IO_EX",
    47: "NFC_FSSRVR_MULTIIO_EX", 48: "NFC_FSSRVR_SYNC", 49: "NFC_FSSRVR_ASMR_MAP",
    50: "NFC_FSSSRVR_UNMAP_INF", 51: "NFC_VERSION", 52: "NFC_AIO_SESSION_OPEN",
    54: "NFC_CONNECTION_DATA", 55: "NFC_SESSION_FEATURES",
}

#: AIO frame types (VDDK 8 capture, protocol.md §5.5).
AIO_TYPES = {1: "ERROR", 2: "OPEN_SESSION", 3: "CLOSE_SESSION", 4: "OPEN_FILE", 5: "CLOSE_FILE",
             7: "IO", 9: "SET_SOCK_OPTS", 10: "GET_FILE_INFO", 11: "DDB_GET", 22: "SET_RES_POOL"}

FILE_TYPES = {0: "NFC_RAW", 1: "NFC_TEXT", 2: "NFC_DISK", 3: "NFC_DELTA_DISK", 4: "NFC_DIGEST",
              5: "NFC_DELTA_DIGEST", 6: "NFC_RDM_DISK", 7: "NFC_OBJECT"}

CONVERSION_FLAGS = {
    1 << 0: "TEXT_UNIX", 1 << 1: "TEXT_WIN", 1 << 2: "DSK_VMDK", 1 << 3: "DSK_VMFS",
    1 << 4: "CREATE_OVERWRITE", 1 << 5: "CREATE_ALTERNATE", 1 << 6: "DSK_FLATTEN",
    1 << 7: "DSK_THINPROV", 1 << 8: "DSK_FORCELSILOGIC", 1 << 9: "DSK_USETARGETVHW",
    1 << 13: "DSK_IDE", 1 << 14: "DSK_SESPARSE",
}
_SESPARSE = 1 << 14
_GRAIN_SIZE_BLOB = 32  # nfclib's NFC_GENERIC_SMALL_DATA_LEN, sent after a SESPARSE FILE_PUT

#: Low half of the AIO IO opcode.
AIO_IO_OPS = {0: "write", 1: "read"}
#: High half of the AIO IO opcode (2 per the VDDK write-up; 1 and 3 per a third-party mock).
COMPRESSION = {0: "none", 1: "zlib", 2: "fastlz", 3: "skipz"}

# Plausibility limits: lengths beyond them mean we are not looking at NFC (or lost step).
MAX_TEXT_LENGTH = 64 * 1024  # paths, names, error texts, key names
MAX_DATA_LENGTH = 16 * 1024 * 1024  # one FILE_DATA / IO fragment (real ones are <= 256 KiB)
MAX_AIO_PAYLOAD = 4096  # known payloads are <= 60 bytes
MAX_CAPTURE = 4096  # bytes of a text extra kept for the event; the rest is skipped
MAX_ERROR_TEXT = 256  # characters of an error text put into the event

_CLIENT_TYPES = {2, 21, 31, 32, 33, 34, 43, 54, 55}  # classic types only a client sends
_SERVER_TYPES = {22, 27, 36}  # classic types only a server sends
_ZERO_BODY_TYPES = {4, 7, 8, 27, 33, 52}  # type-only messages: bytes 4.. are zero


