-- authd.lua: Wireshark / tshark dissector for VMware's port 902 (vmware-authd), by dissect902.
--
-- Written by `dissect902 wireshark-plugin [-o FILE | --install] [--annotate ANALYSIS.json]`;
-- the name tables below (NFC message and AIO frame types) and the optional annotation table are
-- filled in from dissect902's own modules when the file is written.
--
-- What it does (protocol: dissect902's protocol notes, summarised in README.md):
--   * registers on TCP 902/903/912, and heuristically on any TCP port whose server greets with
--     "220 VMware Authentication Daemon";
--   * the banner: authd.banner, authd.version, authd.ssl_required, authd.capability (one per token);
--   * plaintext commands and replies: authd.command, authd.argument (credentials redacted:
--     PASS/XPAS/SESSION/SESSIONID/CONNECT_VPXA arguments, ticket-shaped USER names, THUMBPRINT
--     client tokens, the ticket a 331/230 reply repeats), authd.reply_code, authd.reply_text;
--   * every TLS record, from the first ClientHello on, goes to Wireshark's own TLS dissector, record
--     by record, so the second handshake after "200 Connect" (console, NFC over TLS) is decoded too;
--   * cleartext NFC after TLS #1 (VDDK "nbd"): classic 264-byte messages and AIO frames
--     (authd.nfc.type / authd.nfc.aio_type, authd.nfc.path, authd.nfc.size, authd.nfc.data_len);
--   * with an annotation table (from `dissect902 analyze -f json`): dissect902.session,
--     dissect902.feature, dissect902.confidence on every packet of an analysed TCP session, so that
--     `dissect902.feature == "NFC"` is a display filter.
--
-- Oldest Wireshark supported: 3.0 (the TLS dissector is called "tls" from 3.0 on; "ssl" before is
-- tried as a fallback). Tested with Wireshark/TShark 4.0 (Debian 12).
-- Nothing from the capture is printed raw: fields are Wireshark strings, shown escaped by Wireshark.

local PLUGIN_VERSION = "0.1.0"
local MIN_WIRESHARK = { 3, 0, 0 }

if set_plugin_info then
    set_plugin_info({
        version = PLUGIN_VERSION,
        description = "VMware authd (TCP 902/903/912): banner, commands, TLS #1 and #2, cleartext NFC",
        author = "dissect902",
        repository = "dissect902 (dissect902 wireshark-plugin)",
    })
end

local function version_at_least(want)
    local v = {}
    for n in string.gmatch(get_version and get_version() or "0", "%d+") do
        v[#v + 1] = tonumber(n)
    end
    for i = 1, 3 do
        local have = v[i] or 0
        if have ~= want[i] then
            return have > want[i]
        end
    end
    return true
end

if not version_at_least(MIN_WIRESHARK) then
    error(string.format("authd.lua needs Wireshark >= %d.%d.%d (this is %s)",
        MIN_WIRESHARK[1], MIN_WIRESHARK[2], MIN_WIRESHARK[3], tostring(get_version and get_version())))
end

-- filled in by dissect902 (dissect/port902/wireshark/plugin.py) ---------------------------------
local NFC_TYPES = {} --@@NFC_TYPES@@
local AIO_TYPES = {} --@@AIO_TYPES@@
local FILE_TYPES = {} --@@FILE_TYPES@@
local ANNOTATIONS = {} --@@ANNOTATIONS@@
-- -----------------------------------------------------------------------------------------------

local SERVER_PORTS = { [902] = true, [903] = true, [912] = true }
local GREETING = "220 VMware Authentication Daemon"
local MAX_LINE = 1016
local NFC_BLOCK = 264
local AIO_MAGIC = "\122\218\000\161" -- 7a da 00 a1
local FILE_DATA_MAGIC = 0xABCDEFAB
local MAX_TEXT = 64 * 1024
local MAX_DATA = 16 * 1024 * 1024
local MAX_AIO_PAYLOAD = 4096
local REDACTED = "<redacted>"

local SECRET_VERBS = { PASS = true, XPAS = true, SESSION = true, SESSIONID = true, CONNECT_VPXA = true }
local TOKEN_VERBS = { THUMBPRINT = true, THUMBPRINT_SHA2 = true }
local COMMANDS = {
    USER = true, PASS = true, XPAS = true, SESSION = true, SESSIONID = true, BANNER = true,
    THUMBPRINT = true, THUMBPRINT_SHA2 = true, CONNECT = true, CONNECT_ARGV = true,
    CONNECT_DEBUG_ARGV = true, CONNECT_STATS_ARGV = true, CONNECT_VPXA = true, PROXY = true,
    GLOBAL = true, START = true, STARTDEBUG = true, TOKENKEY = true, QUIT = true,
}

local authd = Proto("authd", "VMware Authentication Daemon")
local d902 = Proto("dissect902", "dissect902 analysis")

local pf = {
    banner = ProtoField.string("authd.banner", "Banner"),
    version = ProtoField.string("authd.version", "Version"),
    ssl_required = ProtoField.bool("authd.ssl_required", "SSL Required"),
    capability = ProtoField.string("authd.capability", "Capability"),
    line = ProtoField.string("authd.line", "Line (credentials redacted)"),
    command = ProtoField.string("authd.command", "Command"),
    argument = ProtoField.string("authd.argument", "Argument"),
    reply_code = ProtoField.uint16("authd.reply_code", "Reply code", base.DEC),
    reply_text = ProtoField.string("authd.reply_text", "Reply text"),
    nfc_type = ProtoField.uint32("authd.nfc.type", "NFC message type", base.DEC, NFC_TYPES),
    nfc_aio_type = ProtoField.uint32("authd.nfc.aio_type", "NFC AIO frame type", base.DEC, AIO_TYPES),
    nfc_aio_size = ProtoField.uint32("authd.nfc.aio_size", "AIO payload size", base.DEC),
    nfc_file_type = ProtoField.uint32("authd.nfc.file_type", "File type", base.DEC, FILE_TYPES),
    nfc_path = ProtoField.string("authd.nfc.path", "Path"),
    nfc_size = ProtoField.uint64("authd.nfc.size", "File size", base.DEC),
    nfc_data_len = ProtoField.uint32("authd.nfc.data_len", "Data bytes", base.DEC),
    nfc_op = ProtoField.string("authd.nfc.op", "IO operation"),
    nfc_raw = ProtoField.bytes("authd.nfc.unparsed", "Unrecognised NFC bytes"),
}
authd.fields = pf

local af = {
    session = ProtoField.string("dissect902.session", "Session uid"),
    feature = ProtoField.string("dissect902.feature", "Feature"),
    confidence = ProtoField.double("dissect902.confidence", "Confidence"),
    reason = ProtoField.string("dissect902.reason", "Top reason"),
}
d902.fields = af

local ex_unparsed = ProtoExpert.new("authd.nfc.unparsed.expert", "Bytes after TLS #1 that are neither TLS nor NFC",
    expert.group.MALFORMED, expert.severity.WARN)
local ex_secret = ProtoExpert.new("authd.redacted", "Credential redacted (it is in the packet bytes)",
    expert.group.SECURITY, expert.severity.NOTE)
authd.experts = { ex_unparsed, ex_secret }

local show_secrets = false
authd.prefs.show_secrets = Pref.bool("Show credentials", false,
    "Show PASS arguments and tickets in authd.argument instead of <redacted>")
function authd.prefs_changed()
    show_secrets = authd.prefs.show_secrets
end

local tls_handle = nil
local function get_tls()
    if tls_handle == nil then
        local ok, h = pcall(Dissector.get, "tls")
        if not ok or h == nil then
            ok, h = pcall(Dissector.get, "ssl")
        end
        tls_handle = h or false
    end
    return tls_handle or nil
end

-- per TCP connection (keyed by its two endpoints: Field extractors such as tcp.stream are empty
-- when a pass builds no tree, e.g. tshark's first pass): who is the server, what was seen (facts
-- learnt in capture order, so that revisiting a packet in the GUI gives the same dissection)
local streams = {}

function authd.init()
    streams = {}
end

local endpoint

local function stream_state(pinfo)
    local a, b = endpoint(pinfo.src, pinfo.src_port), endpoint(pinfo.dst, pinfo.dst_port)
    local key = (a < b) and (a .. " " .. b) or (b .. " " .. a)
    local st = streams[key]
    if st == nil then
        st = { tls = false, connect = false, app = false, starts = {}, last = 0 }
        streams[key] = st
    end
    return st
end

-- "ip:port" / "[v6]:port", as dissect902 writes client and server
function endpoint(addr, port)
    local a = tostring(addr)
    if string.find(a, ":", 1, true) then
        a = "[" .. a .. "]"
    end
    return a .. ":" .. tostring(port)
end

local function from_server(st, pinfo)
    if st.server then
        return endpoint(pinfo.src, pinfo.src_port) == st.server
    end
    if SERVER_PORTS[pinfo.src_port] and not SERVER_PORTS[pinfo.dst_port] then
        return true
    end
    if SERVER_PORTS[pinfo.dst_port] and not SERVER_PORTS[pinfo.src_port] then
        return false
    end
    return pinfo.src_port < pinfo.dst_port
end

-- -- lines ---------------------------------------------------------------------------------------

local function trim(s)
    return (string.gsub(s, "^[%s%z\1-\31]+", ""):gsub("[%s%z\1-\31]+$", ""))
end

local function is_ticket(arg)
    local a = string.lower(arg)
    if string.match(a, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
        return true
    end
    if string.sub(a, 1, 4) == "cst-" and #a > 4 then
        return true
    end
    -- 16 or more hex pairs separated by blanks or dashes
    local pairs_seen = 0
    local rest = a
    local first = string.match(rest, "^(%x%x)")
    if not first then
        return false
    end
    pairs_seen = 1
    rest = string.sub(rest, 3)
    while true do
        local nxt = string.match(rest, "^[ %-](%x%x)")
        if not nxt then
            break
        end
        pairs_seen = pairs_seen + 1
        rest = string.sub(rest, 4)
    end
    return pairs_seen >= 16
end

-- is there an authd line (command, reply, printable text) at offset?
local function looks_like_line(tvb, offset, avail)
    local n = math.min(avail, 64)
    local head = tvb:raw(offset, n)
    if string.match(head, "^%d%d%d[ %-]") or string.match(head, "^[A-Z][A-Z_][A-Z_]") or string.match(head, "^\r?\n") then
        return true
    end
    local body = string.match(head, "^([^\n]*)") or head
    return #body > 0 and not string.find(body, "[^\t\r\32-\126]")
end

local function find_eol(tvb, offset, avail)
    local n = math.min(avail, MAX_LINE + 2)
    local s = tvb:raw(offset, n)
    local at = string.find(s, "\n", 1, true)
    return at -- 1-based index of LF within s, or nil
end

local function parse_banner(text, tree, range)
    local rest = string.sub(text, #GREETING + 1)
    local version = string.match(rest, "^ Version ([%d][%w%.%-]*)")
    local t = tree:add(pf.banner, range, text)
    if version then
        t:add(pf.version, range, version)
        rest = string.sub(rest, #" Version " + #version + 1)
    end
    local ssl = false
    if string.sub(rest, 1, 1) == ":" then
        local comma = string.find(rest, ",", 1, true)
        local head = comma and string.sub(rest, 2, comma - 1) or string.sub(rest, 2)
        ssl = string.find(string.lower(head), "ssl required", 1, true) ~= nil
        rest = comma and string.sub(rest, comma) or ""
    end
    t:add(pf.ssl_required, range, ssl)
    for tok in string.gmatch(rest .. ",", ",([^,]*)") do
        local cap = trim(tok)
        if cap ~= "" then
            t:add(pf.capability, range, cap)
        end
    end
    return version
end

local function client_line(text, st, tree, range)
    local verb, sep, arg = string.match(text, "^[%s%z\1-\31]*([^%s%z\1-\31]*)([%s%z\1-\31]?)(.*)$")
    verb = string.upper(verb or "")
    arg = trim(arg or "")
    local bare = arg
    local secret = false
    if SECRET_VERBS[verb] or (verb == "USER" and is_ticket(bare)) then
        secret = arg ~= ""
    elseif TOKEN_VERBS[verb] then
        secret = arg ~= "" and string.lower(bare) ~= "plaintext"
    end
    if secret and verb ~= "PASS" and verb ~= "XPAS" then
        st.ticket = true
    end
    if secret and (verb == "PASS" or verb == "XPAS") and is_ticket(bare) then
        st.ticket = true
    end
    if verb == "USER" then
        st.user_secret = secret
    end
    local shown_arg = (secret and not show_secrets) and REDACTED or arg
    local shown = text
    if secret and not show_secrets then
        shown = verb .. (sep ~= "" and sep or " ") .. REDACTED
    end
    local t = tree:add(pf.line, range, shown)
    if COMMANDS[verb] then
        t:add(pf.command, range, verb)
    end
    if arg ~= "" then
        local a = t:add(pf.argument, range, shown_arg)
        if secret and not show_secrets then
            a:add_proto_expert_info(ex_secret)
        end
    end
    if verb == "CONNECT" or verb == "PROXY" or string.sub(verb, 1, 8) == "CONNECT_" then
        st.connect_sent = true
    end
    return (COMMANDS[verb] and verb or "line") .. (arg ~= "" and (" " .. shown_arg) or "")
end

local function server_line(text, st, tree, range, pinfo)
    local code = string.match(text, "^(%d%d%d)")
    local shown = text
    if not show_secrets then
        local pre, who, post = string.match(text, "^(331[ %-][Pp]assword required for )(.-)(%.?)$")
        if not pre then
            pre, who, post = string.match(text, "^(230[ %-][Uu]ser )(.-)( logged in%.?)$")
        end
        if pre then
            if st.user_secret or is_ticket(trim(who)) then
                shown = pre .. REDACTED .. post
            end
        elseif st.ticket and code and code ~= "220" and not string.match(text, "^530 ")
            and not string.match(text, "^%d%d%d$") then
            shown = code .. " " .. REDACTED
        end
    end
    local t = tree:add(pf.line, range, shown)
    if code then
        t:add(pf.reply_code, range, tonumber(code))
        local body = string.sub(shown, 5)
        if body ~= "" then
            t:add(pf.reply_text, range, body)
        end
        if code == "200" and string.match(text, "^200 Connect") and st.connect_sent then
            st.connect = true
        end
    end
    if string.sub(text, 1, #GREETING) == GREETING then
        if not st.server then
            st.server = endpoint(pinfo.src, pinfo.src_port)
        end
        parse_banner(text, t, range)
    end
    return shown
end

-- -- NFC -----------------------------------------------------------------------------------------

local function u32(tvb, offset)
    return tvb(offset, 4):le_uint()
end

-- bytes needed for one NFC PDU at offset: (length, kind) or (nil, needed) when more is needed, or
-- (false) when it is not NFC
local function nfc_pdu_length(tvb, offset, avail, server_side)
    if avail < 4 then
        return nil, 4
    end
    if tvb:raw(offset, 4) == AIO_MAGIC then
        if avail < 16 then
            return nil, 16
        end
        local aio_type = u32(tvb, offset + 4)
        local size = u32(tvb, offset + 8)
        if AIO_TYPES[aio_type] == nil or size > MAX_AIO_PAYLOAD then
            return false
        end
        if avail < 16 + size then
            return nil, 16 + size
        end
        local p = offset + 16
        local extra = 0
        if aio_type == 7 and size >= 44 then
            local handle = tvb(p, 8):le_uint64()
            local op = u32(tvb, p + 8)
            local compression = u32(tvb, p + 12)
            local frag_len = u32(tvb, p + 28)
            local wire_len = u32(tvb, p + 32)
            local client = not server_side
            local carries = (client and op == 0) or ((not client) and op == 1)
            if carries then
                extra = (wire_len ~= 0 or compression ~= 0) and wire_len or frag_len
            end
            local _ = handle
        elseif aio_type == 4 and size >= 24 then
            if not server_side then
                extra = u32(tvb, p)
            end
        elseif aio_type == 1 and size >= 16 then
            extra = u32(tvb, p + 12)
        elseif aio_type == 10 or aio_type == 11 then
            -- no length field: the extra runs up to the next AIO magic
            local have = tvb:raw(p + size, avail - 16 - size)
            local at = string.find(have, AIO_MAGIC, 1, true)
            -- (within the bytes at hand: asking TCP for "one more segment" here re-dissects what
            -- came before; a client writes the frame and its key in one go)
            extra = at and (at - 1) or (avail - 16 - size)
        end
        if extra > MAX_DATA then
            return false
        end
        return 16 + size + extra, "aio"
    end
    local msg_type = u32(tvb, offset)
    if NFC_TYPES[msg_type] == nil then
        return false
    end
    if avail < NFC_BLOCK then
        return nil, NFC_BLOCK
    end
    local w4, w8, w12 = u32(tvb, offset + 4), u32(tvb, offset + 8), u32(tvb, offset + 12)
    local extra = 0
    if msg_type == 1 then
        -- type, fileType, conversionFlags, pathLen, fileSize (u64), spaceRequired (u64),
        -- parentPathLen @32, rdmDevicePathLen @36, isPassthrough (u8) @40, storagePolicyLen @41
        extra = w12 + u32(tvb, offset + 32) + u32(tvb, offset + 36) + u32(tvb, offset + 41)
        if math.floor(w8 / 0x4000) % 2 == 1 then -- DSK_SESPARSE: a 32-byte grain-size blob follows
            extra = extra + 32
        end
    elseif msg_type == 2 then
        extra = w8
    elseif msg_type == 7 then
        if avail < NFC_BLOCK + 8 then
            return nil, NFC_BLOCK + 8
        end
        local magic = u32(tvb, offset + NFC_BLOCK)
        if magic ~= FILE_DATA_MAGIC then
            return NFC_BLOCK, "msg"
        end
        extra = 8 + u32(tvb, offset + NFC_BLOCK + 4)
    elseif msg_type == 20 then
        extra = w12
    elseif msg_type == 21 or msg_type == 34 then
        extra = w4
    elseif msg_type == 23 then
        local carries = (not server_side) == (w4 == 1)
        if carries then
            extra = tvb(offset + 16, 4):le_uint()
        end
    elseif msg_type == 31 or msg_type == 32 or msg_type == 33 then
        extra = w4
    elseif msg_type == 36 then
        extra = w4 + w8
    elseif msg_type == 54 then
        extra = w4 + w8
    end
    if extra > MAX_DATA then
        return false
    end
    return NFC_BLOCK + extra, "msg"
end

local function text_at(tvb, offset, len)
    if len <= 0 then
        return ""
    end
    local s = tvb:raw(offset, math.min(len, 4096))
    return (string.gsub(s, "%z.*$", ""))
end

local function dissect_nfc(tvb, offset, len, kind, server_side, tree)
    local range = tvb(offset, len)
    if kind == "aio" then
        local aio_type = u32(tvb, offset + 4)
        local size = u32(tvb, offset + 8)
        local t = tree:add(authd, range, "NFC AIO " .. (AIO_TYPES[aio_type] or tostring(aio_type)))
        t:add_le(pf.nfc_aio_type, tvb(offset + 4, 4))
        t:add_le(pf.nfc_aio_size, tvb(offset + 8, 4))
        local p = offset + 16
        local extra = len - 16 - size
        if aio_type == 4 and not server_side and extra > 0 then
            t:add(pf.nfc_path, tvb(p + size, extra), text_at(tvb, p + size, extra))
        elseif aio_type == 7 and size >= 44 then
            local op = u32(tvb, p + 8)
            t:add(pf.nfc_op, tvb(p + 8, 4), op == 0 and "write" or op == 1 and "read" or tostring(op))
            if extra > 0 then
                t:add(pf.nfc_data_len, tvb(p + size, extra), extra)
            end
        end
        return "NFC " .. (AIO_TYPES[aio_type] or tostring(aio_type))
    end
    local msg_type = u32(tvb, offset)
    local name = NFC_TYPES[msg_type] or tostring(msg_type)
    local t = tree:add(authd, range, "NFC " .. name)
    t:add_le(pf.nfc_type, tvb(offset, 4))
    local extra = len - NFC_BLOCK
    if msg_type == 1 then
        t:add_le(pf.nfc_file_type, tvb(offset + 4, 4))
        t:add_le(pf.nfc_size, tvb(offset + 16, 8))
        local plen = u32(tvb, offset + 12)
        if plen > 0 then
            t:add(pf.nfc_path, tvb(offset + NFC_BLOCK, plen), text_at(tvb, offset + NFC_BLOCK, plen))
        end
    elseif msg_type == 2 then
        t:add_le(pf.nfc_file_type, tvb(offset + 4, 4))
        if extra > 0 then
            t:add(pf.nfc_path, tvb(offset + NFC_BLOCK, extra), text_at(tvb, offset + NFC_BLOCK, extra))
        end
    elseif msg_type == 21 or msg_type == 34 then
        if extra > 0 then
            t:add(pf.nfc_path, tvb(offset + NFC_BLOCK, extra), text_at(tvb, offset + NFC_BLOCK, extra))
        end
    elseif msg_type == 7 and extra >= 8 then
        t:add(pf.nfc_data_len, tvb(offset + NFC_BLOCK + 4, 4), extra - 8)
    elseif msg_type == 23 and extra > 0 then
        t:add(pf.nfc_data_len, tvb(offset + NFC_BLOCK, extra), extra)
    end
    return name
end

-- -- the PDU loop --------------------------------------------------------------------------------

local function tls_record_length(tvb, offset, avail)
    -- a TLS record header: type 20..24, major version 3, minor 0..4, length <= 2^14 + 2048
    if avail < 1 then
        return false
    end
    local ct = tvb(offset, 1):uint()
    if ct < 20 or ct > 24 then
        return false
    end
    if avail < 3 then
        if avail == 2 and tvb(offset + 1, 1):uint() ~= 3 then
            return false
        end
        return nil, 5
    end
    if tvb(offset + 1, 1):uint() ~= 3 or tvb(offset + 2, 1):uint() > 4 then
        return false
    end
    if avail < 5 then
        return nil, 5
    end
    local rlen = tvb(offset + 3, 2):uint()
    if rlen > 16384 + 2048 then
        return false
    end
    return 5 + rlen
end

-- Wireshark's TLS dissector keeps one TLS session per conversation and, once a ChangeCipherSpec
-- went by, reads later handshake records as encrypted. TLS #2 is a new session on the same TCP
-- connection, so each handshake after the first is handed to TLS as its own conversation: the
-- server's port is shown to TLS as 0, 1, ... for TLS #2, #3 ... during the call (and restored).
local function call_tls(tls, rec, pinfo, tree, st, server_side)
    local gen = 1
    for _, frame in ipairs(st.starts) do
        if pinfo.number >= frame then
            gen = gen + 1
        end
    end
    if gen == 1 then
        tls:call(rec, pinfo, tree)
        return
    end
    local sport, dport = pinfo.src_port, pinfo.dst_port
    if server_side then
        pinfo.src_port = gen - 2
    else
        pinfo.dst_port = gen - 2
    end
    local ok, err = pcall(tls.call, tls, rec, pinfo, tree)
    pinfo.src_port, pinfo.dst_port = sport, dport
    if not ok then
        error(err)
    end
end

function authd.dissector(tvb, pinfo, tree)
    local total = tvb:len()
    if total == 0 then
        return 0
    end
    local st = stream_state(pinfo)
    local server_side = from_server(st, pinfo)
    if pinfo.number > st.last then
        st.last = pinfo.number
    end
    local offset = 0
    local subtree = nil
    local info = {}
    local tls_called = false
    while offset < total do
        local avail = total - offset
        local rlen, need = tls_record_length(tvb, offset, avail)
        if rlen == nil and not looks_like_line(tvb, offset, avail) then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = need - avail
            return total
        end
        if rlen then
            if avail < rlen then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = rlen - avail
                return total
            end
            st.tls = true
            -- a run of complete records goes to TLS in one call, as TCP would hand them over; a
            -- client's ClientHello always starts a run of its own (it may begin TLS #2)
            local run_start = offset
            while offset < total do
                local r = tls_record_length(tvb, offset, total - offset)
                if not r or total - offset < r then
                    break
                end
                local ct = tvb(offset, 1):uint()
                local hello = ct == 22 and not server_side and r > 5 and tvb(offset + 5, 1):uint() == 1
                if hello and offset ~= run_start then
                    break
                end
                local fresh = pinfo.number >= st.last -- in capture order (a pass), not a revisit
                if hello and st.app and fresh then
                    -- a ClientHello after application data: a new handshake on the raw stream
                    if st.starts[#st.starts] ~= pinfo.number then
                        table.insert(st.starts, pinfo.number)
                    end
                    st.app = false
                elseif ct == 23 and fresh then
                    st.app = true
                end
                offset = offset + r
            end
            local tls = get_tls()
            if tls then
                call_tls(tls, tvb(run_start, offset - run_start):tvb(), pinfo, tree, st, server_side)
                tls_called = true
            end
        elseif looks_like_line(tvb, offset, avail) then
            local lf = find_eol(tvb, offset, avail)
            local llen
            if lf then
                llen = lf
            elseif avail >= MAX_LINE then
                llen = avail
            else
                pinfo.desegment_offset = offset
                pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
                return total
            end
            local raw = tvb:raw(offset, llen)
            local text = string.gsub(raw, "\r?\n$", "")
            if subtree == nil then
                subtree = tree:add(authd, tvb(offset))
            end
            local range = tvb(offset, llen)
            if server_side then
                info[#info + 1] = server_line(text, st, subtree, range, pinfo)
            else
                info[#info + 1] = client_line(text, st, subtree, range)
            end
            offset = offset + llen
        elseif st.tls or st.connect then
            local plen, kind = nfc_pdu_length(tvb, offset, avail, server_side)
            if plen == nil then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = (kind == "more") and DESEGMENT_ONE_MORE_SEGMENT or (kind - avail)
                return total
            end
            if subtree == nil then
                subtree = tree:add(authd, tvb(offset))
            end
            if plen == false then
                local it = subtree:add(pf.nfc_raw, tvb(offset))
                it:add_proto_expert_info(ex_unparsed)
                info[#info + 1] = "NFC? " .. avail .. " bytes"
                offset = total
            else
                if avail < plen then
                    pinfo.desegment_offset = offset
                    pinfo.desegment_len = plen - avail
                    return total
                end
                info[#info + 1] = dissect_nfc(tvb, offset, plen, kind, server_side, subtree)
                offset = offset + plen
            end
        else
            if subtree == nil then
                subtree = tree:add(authd, tvb(offset))
            end
            subtree:add(pf.nfc_raw, tvb(offset)):add_proto_expert_info(ex_unparsed)
            offset = total
        end
    end
    if #info > 0 then
        local text = table.concat(info, ", ")
        if #text > 200 then
            text = string.sub(text, 1, 200) .. "..."
        end
        if tls_called then
            pinfo.cols.info:append(" | authd: " .. text)
        else
            pinfo.cols.protocol = "authd"
            pinfo.cols.info = text
        end
    end
    return total
end

local function heuristic(tvb, pinfo, tree)
    local n = tvb:len()
    if n < 8 then
        return false
    end
    local want = math.min(n, #GREETING)
    if tvb:raw(0, want) ~= string.sub(GREETING, 1, want) then
        return false
    end
    pinfo.conversation = authd
    authd.dissector(tvb, pinfo, tree)
    return true
end

local tcp_table = DissectorTable.get("tcp.port")
for port, _ in pairs(SERVER_PORTS) do
    tcp_table:add(port, authd)
end
authd:register_heuristic("tcp", heuristic)

-- -- annotations from `dissect902 analyze -f json` ------------------------------------------------

local annotated = {}
for _, a in ipairs(ANNOTATIONS) do
    local key = a.client .. ">" .. a.server
    annotated[key] = annotated[key] or {}
    table.insert(annotated[key], a)
end

if #ANNOTATIONS > 0 then
    function d902.dissector(tvb, pinfo, tree)
        if pinfo.port_type ~= 2 then -- PT_TCP
            return
        end
        local src = endpoint(pinfo.src, pinfo.src_port)
        local dst = endpoint(pinfo.dst, pinfo.dst_port)
        local list = annotated[src .. ">" .. dst] or annotated[dst .. ">" .. src]
        if list == nil then
            return
        end
        local ts = pinfo.abs_ts
        for _, a in ipairs(list) do
            if ts >= a.start - 1 and ts <= (a.stop or a.start) + 1 then
                local t = tree:add(d902, tvb(0, 0), "dissect902: " .. a.feature .. " " .. string.format("%.2f", a.confidence))
                t:add(af.session, a.uid)
                t:add(af.feature, a.feature)
                t:add(af.confidence, a.confidence)
                if a.reason then
                    t:add(af.reason, a.reason)
                end
                return
            end
        end
    end
    register_postdissector(d902)
end
