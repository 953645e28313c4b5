#!/usr/bin/env python3
"""Write the training notebooks in ``notebooks/`` from the cell texts below.

    python scripts/make_notebooks.py            # (re)write every notebook
    python scripts/make_notebooks.py --check    # exit 1 if a committed notebook differs

The notebooks are source, not output: every cell lives here as plain text so a review sees
prose and code as a diff, and the committed ``.ipynb`` files carry no outputs (cell ids are
fixed, so regenerating an unchanged notebook gives the same bytes).  ``tests/test_notebooks.py``
executes each one top to bottom against ``samples/``.

1. ``01-port-902-tour``            what authd is, banners, TLS #1, the second handshake, MKS/NFC/
                                   SOAP/VMXARGS, classic ESX's 903->902 hand-off
2. ``02-investigating-a-capture``  sessions in pandas, filters, traffic by feature, one session
3. ``03-console-wont-open``        the diagnosis findings on the failure captures
4. ``04-how-the-classifier-decides`` features, rules, thresholds and their distributions
5. ``05-mks-versus-plain-vnc``     the vmx VNC route next to MKS over 902: what each shows, the
                                   diagnosis, a console that did not follow its VM
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

SETUP = '''\
from pathlib import Path

import pandas as pd

from dissect.port902 import analyze, plots

# samples/ of the repository: the notebooks live in notebooks/, one level below it
SAMPLES = next(p / "samples" for p in (Path.cwd(), *Path.cwd().parents) if (p / "samples").is_dir())
pd.set_option("display.max_colwidth", 90)
pd.set_option("display.width", 160)'''


def md(text: str) -> tuple[str, str]:
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", textwrap.dedent(text).strip("\n"))


# ---------------------------------------------------------------------------------------------
# 1. A guided tour of port 902
# ---------------------------------------------------------------------------------------------

TOUR = [
    md("""
    # A guided tour of port 902

    Every vSphere administrator uses TCP port 902 daily, mostly without knowing it: it is how
    a VM console reaches the ESXi host, how files are copied to and from datastores, and how
    backup software reads virtual disks. This notebook walks through what travels on that
    port, using the sample captures in `samples/` (described minute by minute in
    `samples/README.md`) and the charts of `dissect902`.

    What you will see:

    1. who listens on 902, and what the greeting line (the *banner*) tells you;
    2. the TLS upgrade right after the banner, and what stays visible although it is encrypted;
    3. the **second TLS handshake** on the same connection, when authd hands it over;
    4. the four features multiplexed on the port: **MKS** (console), **NFC** (file copy),
       **SOAP** and **VMXARGS**;
    5. classic ESX's **903 → 902 hand-off**;
    6. a first look at failures (the subject of notebook 3).

    Facts about the protocol come from `protocol.md` (shared with this project); the `[Sn]`
    tags point to its source table. Where public material is silent, the reference says
    **UNKNOWN** and so do we.
    """),
    code(SETUP),
    md("""
    ## 1. Who listens on 902

    Port 902 is served by the **VMware Authentication Daemon**, `vmware-authd`. The
    original article this project grew from (a Japanese blog post, "ESXi の ポート 902
    について") puts it simply: 902 *multiplexes* four functions, and you can see them
    advertised by connecting with `telnet`:

    ```
    $ telnet esxi 902
    220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported
    ```

    After that greeting everything is TLS — and because one port carries all four
    protocols, you cannot, say, carve the console out and point a plain VNC viewer at it.

    The same port *number* on UDP is something else entirely: ESXi's `vpxa` sends
    heartbeats to vCenter on UDP 902 [S35][S41]. Related TCP ports: **903** took remote
    consoles on classic ESX (service console era) [S40]; **912** is VMware Workstation's
    second, non-SSL authd listener [S11][S46]; **443** is the companion where clients obtain
    the short-lived *tickets* they present on 902 [S29][S30].

    Let's open the simplest capture: an administrator opens one VM console on ESXi 8 and
    uses it for about half a minute.
    """),
    code("""
    console = analyze(SAMPLES / "esxi8-console.pcap")
    sessions = console.sessions_frame()
    sessions[["uid", "orig_ip", "resp_ip", "resp_port", "duration_s", "transport", "tls_handshakes",
              "product", "feature", "confidence"]]
    """),
    md("""
    One TCP connection to 902, about 34 s long, `transport` **tls+tls2**: two TLS handshakes on
    one connection. The classifier calls it **MKS** (the console) with high confidence. The rest
    of this notebook explains every part of that line.

    ## 2. The banner and its variants

    The server speaks first, in clear, before any byte from the client [S3][S5][S9][S20][S23].
    `dissect902` keeps every line it can read in the *dialogue* table; for an SSL daemon that is
    only the banner:
    """),
    code("""
    console.dialogue_frame()[["frame", "direction", "code", "text"]]
    """),
    md("""
    The banner is a small inventory of the daemon [S1][S19][S20]:

    | token | meaning |
    |---|---|
    | `Version 1.10` / `1.0` / `1.00` | authd protocol version; 1.0x daemons do not require SSL |
    | `SSL Required` | the client must start TLS right after this line (there is no STARTTLS command) |
    | `ServerDaemonProtocol:SOAP` | how authd talks to the host daemon — SOAP for hostd, `IPC` presumably for the older serverd (an inference; no public definition) |
    | `MKSDisplayProtocol:VNC` | the console stream is VNC/RFB with VMware extensions [S29] |
    | `VMXARGS supported` | the `CONNECT_ARGV` command family is accepted (semantics not public) |
    | `NFCSSL supported[/t]` | NFC can run inside TLS (`PROXY …nfcssl`); the meaning of `/t` is **UNKNOWN** |
    | `SHA256 supported` | `THUMBPRINT_SHA2` is accepted (ESXi 8, seen with VDDK 8) |

    The variants are a version fingerprint. Here are all the greetings in the samples, with the
    product `dissect902` infers from them (protocol.md §2.1 lists B1–B11):
    """),
    code("""
    everything = analyze(sorted(SAMPLES.glob("*.pcap*")))
    all_sessions = everything.sessions_frame()
    greetings = (everything.dialogue_frame().query("code == 220")
                 .merge(all_sessions[["uid", "resp_port", "product", "ssl_required"]], on="uid"))
    greetings["bytes"] = greetings["text"].str.len() + 2  # + CR LF
    (greetings.drop_duplicates("text")
              .sort_values("bytes")[["resp_port", "bytes", "ssl_required", "product", "text"]])
    """),
    md("""
    Three things to notice:

    * the greeting grows with the release — 47 bytes for a GSX-era `Version 1.00`, 170 for
      ESXi 8 with `SHA256 supported`;
    * the two non-SSL daemons (`ssl_required` False: GSX-era 902 and Workstation's 912) expose
      the whole dialogue in clear — `samples/legacy-login.pcap` shows `USER`/`PASS` and the
      `530 Login incorrect.` reply as plain text;
    * scanners identify authd by this line alone (nmap's `vmware-auth` / `ssl/vmware-auth`
      probes, OpenVAS, Nessus, Metasploit) [S1][S7][S33][S34].

    ## 3. The TLS upgrade (TLS #1)

    Right after the banner the client sends a TLS ClientHello on the same TCP connection — no
    command first [S3][S9][S12][S13][S20][S23]. The server presents the **host certificate**
    (`/etc/vmware/ssl/rui.crt`), and clients *pin* it by its SHA-1 thumbprint, which they got
    together with the ticket [S13][S14][S23][S24][S32]. With TLS 1.2 the certificate travels in
    clear, so the capture shows it:
    """),
    code("""
    hs = console.handshakes_frame()
    hs[["index", "frame", "version", "cipher", "cert_subject", "cert_sha1"]]
    """),
    md("""
    The thumbprint has vSphere's format — 20 bytes as upper-case hex pairs joined by colons
    [S32] — so it can be compared with what vCenter shows for the host. (TLS 1.3 encrypts the
    certificate; the ESXi 8 console in `mixed-esxi.pcap` negotiates TLS 1.3 and shows none.)

    **Inside TLS #1** the client authenticates and asks for a service. For a console the
    sequence is known from three independent client implementations [S12][S13][S14][S15]:

    ```
    C: USER <ticket>            S: 331 Password required for <ticket>.
    C: PASS <ticket>            S: 230 User <ticket> logged in.
    C: THUMBPRINT <16 chars>    S: 200 <SHA-1 thumbprint of the certificate for TLS #2>
    C: CONNECT <vmx path> mks   S: 200 Connect <vmx path>
    ```

    authd writes **one line per TLS record**, and AES-GCM in TLS 1.2 adds exactly 24 bytes to
    each record (8-byte explicit nonce + 16-byte tag). So the record lengths, which stay in
    clear, give away the line lengths:
    """),
    code("""
    records = console.tls_records_frame()
    tls1 = records.query("handshake == 1 and content_type == 'application_data'").copy()
    tls1["line_bytes"] = tls1["length"] - 24  # AES-GCM (TLS 1.2): 8-byte nonce + 16-byte tag

    TICKET = 36  # an MKS ticket is UUID-shaped [S12]
    expected = [
        ("USER <ticket>", len("USER ") + TICKET + 2),
        ("331 Password required for <ticket>.", len("331 Password required for .") + TICKET + 2),
        ("PASS <ticket>", len("PASS ") + TICKET + 2),
        ("230 User <ticket> logged in.", len("230 User  logged in.") + TICKET + 2),
        ("THUMBPRINT <16 chars>", len("THUMBPRINT ") + 16 + 2),
        ("200 <SHA-1 thumbprint>", len("200 ") + 59 + 2),
        ("CONNECT <vmx path> mks", None),
        ("200 Connect <vmx path>", None),
    ]
    tls1["expected line (protocol.md §4.2)"] = [e[0] for e in expected[: len(tls1)]]
    tls1["expected bytes"] = pd.array([e[1] for e in expected[: len(tls1)]], dtype="Int64")
    tls1[["frame", "direction", "length", "line_bytes", "expected line (protocol.md §4.2)", "expected bytes"]]
    """),
    md("""
    The first six lines match to the byte. The last two depend on the VM's path, and the
    arithmetic runs backwards: `CONNECT ` + path + ` mks` + CR LF is `line_bytes`, so the
    capture reveals **how long the VM's `.vmx` path is** without decrypting anything:
    """),
    code("""
    connect_line = int(tls1["line_bytes"].iloc[6])
    vmx_path_length = connect_line - len("CONNECT ") - len(" mks") - 2
    vmx_path_length
    """),
    md("""
    (The lab's key log, `samples/esxi8-console.keys`, lets Wireshark decrypt TLS #1 and confirm
    it: the path is `/vmfs/volumes/9751bcf8-df223b2b-4507-9bc46c86bb16/web-frontend-01/web-frontend-01.vmx`.)

    ## 4. The second handshake

    After `200 Connect …` authd hands the connection to the VM's console server. The client
    **abandons TLS #1 without a close_notify** and starts a **brand-new TLS handshake on the raw
    TCP stream** — not nested inside the first one [S12][S13][S14][S20][S24]. VMware's own
    `nfclib` says why: "the server side does not [unwrap], so we need to just switch directly
    over to the raw socket" [S24]. Wireshark 4.0 shows this second ClientHello as an "Encrypted
    Handshake Message" because it does not expect a handshake after ChangeCipherSpec; the
    record header (`16 03 0x`) is still there.

    The first thing the client sends inside TLS #2 is the 16-character token from its
    `THUMBPRINT` line, which binds the new channel to the authenticated one [S12][S13]:
    16 bytes + 24 = a 40-byte record.
    """),
    code("""
    tls2 = records.query("handshake == 2 and content_type == 'application_data'")
    first_after = tls2.iloc[0]
    print(f"TLS #2 starts at frame {int(hs.query('index == 2')['frame'].iloc[0])}; "
          f"first client record: {int(first_after['length'])} bytes = 16-byte token + 24")
    tls2.head(8)[["frame", "direction", "length"]]
    """),
    md("""
    The server's first record (63 bytes, 39 of plaintext) fits an RFB *ServerInit*: 24 fixed
    bytes plus the desktop name — here the 15 characters of `web-frontend-01` (protocol.md §4.3,
    an inference shared by the client implementations). Then comes the screen, 16 KiB record
    after 16 KiB record.

    The **fingerprint** chart draws every TLS record of a session: length against time. Grey
    band: TLS #1 (authd lines, one record each). Dashed line: the second handshake. The time
    axis is linear through the handshakes and logarithmic after, so both the first 100
    milliseconds and the half-minute of use fit.
    """),
    code("""
    plots.fingerprints(console)
    """),
    md("""
    Read it from left to right: the square is the banner in clear; the crosses the two
    handshakes; inside the grey band the eight authd lines. After TLS #2 the console has a
    rhythm you can recognise without decrypting it — a steady trickle of small client records
    (8-byte KeyEvents and 6-byte PointerEvents, plus framebuffer update requests [S25]) and
    server records of ~80–100 bytes (small screen updates, a blinking cursor), with bursts of
    large records when windows are redrawn, and gaps when nobody touches the keyboard.

    ## 5. MKS, NFC, SOAP and VMXARGS side by side

    `samples/mixed-esxi.pcap` is four minutes on a small site: three consoles, two NFC disk
    reads (one in clear, one inside TLS #2), a SOAP session and a VMXARGS exchange, a brute
    force run and a scanner probe. The timeline draws one bar per session, coloured by the
    feature the classifier assigned:
    """),
    code("""
    site = analyze(SAMPLES / "mixed-esxi.pcap")
    plots.session_timeline(site)
    """),
    md("""
    What the colours stand for:

    * **MKS — the console** (blue, long bars). Keyboard, video, mouse: VNC/RFB inside TLS #2
      [S13][S29]. The first bar began before the capture (◀): only its TLS #2 records are
      visible, and the classifier, left with the traffic shape, is less sure (0.70).
    * **NFC — the Network File Copier** (orange, short bars). Not the contactless payment NFC:
      VMware's file-copy protocol, used by the datastore browser, vSphere Replication, guest
      customisation, Converter and VDDK backups (`nbd` / `nbdssl` transports)
      [S20][S21][S32][S41]. After `PROXY vpxa-nfc` the stream continues **in clear** — 264-byte
      NFC messages, then 16-byte "AIO" frames with magic `7a da 00 a1` [S21][S22] — or, after
      `PROXY vpxa-nfcssl`, inside a second TLS handshake like the console.
    * **SOAP** and **VMXARGS** (green, purple). The banner advertises them, but no public source
      defines what runs there (protocol.md §6); the lab's versions are *models*
      (`expected.model` in the labels). The seed article skips them as "too internal".
    * **NONE** (grey): sessions that used no feature — the brute-force run from 10.50.66.6 (one
      connection with four rejected passwords, then three connections with one each; the dashed
      arrows link retries) and a scanner that read the banner and left.

    The record-size fingerprints show why the three encrypted features are told apart:
    """),
    code("""
    plots.fingerprints(site, max_sessions=4)
    """),
    md("""
    * the **console** (MKS, top left): hundreds of tiny client records (triangles) over tens of
      seconds, server records mostly under 100 bytes, pauses;
    * the **NFC** read over TLS (top right): after TLS #2, 264-byte NFC messages and then a few
      milliseconds of 16 KiB server records (the disk data) — the whole session lasts 50 ms;
    * **SOAP** (bottom left): no second handshake, and records of hundreds to thousands of bytes
      in both directions inside TLS #1 — an HTTP request and response, not authd lines;
    * **VMXARGS** (bottom right): no hand-off either, only a login and one longer command with
      its reply.

    Notebook 4 shows how the classifier turns exactly these differences into a decision.

    Where is NFC in clear? The `nbd` session has a single handshake and `transport`
    `tls+clear`; `dissect902` parses the cleartext messages directly:
    """),
    code("""
    nfc = analyze(SAMPLES / "nfc-transfers.pcapng")
    pd.DataFrame([{
        "uid": rec.uid[:9], "transport": rec.transport, "handshakes": len(rec.handshakes),
        "NFC messages": sum(rec.nfc_message_types.values()), "AIO frames": sum(rec.nfc_aio_types.values()),
        "data bytes": rec.nfc_data_bytes, "some message types": ", ".join(sorted({**rec.nfc_message_types,
                                                                                  **rec.nfc_aio_types})[:5]),
    } for rec in nfc.sessions])
    """),
    md("""
    The first session is VDDK `nbd` (a 512 KiB disk read in cleartext AIO frames), the second
    `nbdssl` (inside TLS #2, so no NFC message is readable), the third an `nfclib`-style upload
    of a 192 KiB file (`FILE_PUT`, `FILE_DATA`, `PUTFILE_DONE`). Traffic over time makes the
    difference between a copy and a console obvious — a copy is a wall, a console a murmur:
    """),
    code("""
    plots.bytes_over_time(site)
    """),
    md("""
    Top: server → client (screen updates, disk reads). Bottom: client → server (keys, pointer,
    uploads), on its own scale — a console receives about ten times what it sends.

    ## 6. Classic ESX: 903, then 902

    On classic ESX (the service-console era, ESX 3.x/4.x) remote consoles first connected to
    **903**, served by the service console's authd (`xinetd/vmware-authd-mks`) [S40], and were
    then passed to **902** on the vmkernel. The seed article explains why: keeping the console
    on the service console would load it, so only the initial exchange happens there and the
    rest runs on the vmkernel. The exact 903 exchange is not public (protocol.md §7), so the lab
    models it; what is observable is the pattern — a short 903 session, then within a second a
    902 session from the same client to the same host.
    """),
    code("""
    classic = analyze(SAMPLES / "classic-esx-handoff.pcap")
    classic.handoffs_frame()
    """),
    code("""
    plots.session_timeline(classic)
    """),
    md("""
    The red-orange (vermillion) arrow is the hand-off (`infer/links.py` pairs a 903 session with the first 902
    session of the same client within 10 s, Zeek-style). Both banners are older variants
    (`MKSDisplayProtocol:VNC` without `VMXARGS`), and both handshakes are TLS 1.0.
    """),
    code("""
    classic.sessions_frame()[["uid", "resp_port", "tls_version", "product", "handoff_from", "handoff_to",
                              "handoff_gap_s", "feature"]]
    """),
    md("""
    ## 7. When nothing happens

    The most common question about 902 is why a console does *not* open. The seed article's
    answer: the console client talks to vCenter **and directly to the ESXi host**, so it fails
    when the client cannot resolve the host's name, cannot reach it, or a firewall closes 902.
    `samples/unanswered-syn.pcap` shows two of those from the client's side:
    """),
    code("""
    plots.session_timeline(analyze(SAMPLES / "unanswered-syn.pcap"))
    """),
    md("""
    The first host never answers: the client's SYN is retransmitted after 1, 2, 4 and 8 s (the
    ×'s — TCP's exponential back-off). The second answers the SYN with a reset: nothing listens,
    or a firewall rejects. Neither session carries a single byte, yet both are in the table,
    with state `no_answer` and `refused`. Notebook 3 turns such evidence into ranked findings.

    ## Summary

    * 902 is one port for four functions, announced by a plaintext banner whose variants date
      the daemon.
    * Everything after the banner is TLS, but the record lengths follow authd's lines, and the
      **second handshake** marks the moment authd hands the connection to the console or to NFC.
    * Consoles, copies and SOAP look different even encrypted: size, rhythm and duration.
    * Classic ESX's 903 → 902 hand-off shows up as a linked pair of sessions.

    Next: notebook 2 investigates a capture with pandas; notebook 3 troubleshoots consoles that
    won't open; notebook 4 opens the classifier.
    """),
]

# ---------------------------------------------------------------------------------------------
# 2. Investigating a capture
# ---------------------------------------------------------------------------------------------

INVESTIGATE = [
    md("""
    # Investigating a capture

    A hands-on workflow with `pandas`: load a capture, list its port-902 sessions, filter them,
    chart the traffic by feature and drill into one session down to its TLS records. The
    capture is `samples/mixed-esxi.pcap` — four minutes on a small vSphere site with three ESXi
    hosts, vCenter, administrators, a backup server and an attacker (see `samples/README.md`
    for the minute-by-minute story).

    The same analysis is available on the command line:

    ```sh
    dissect902 analyze samples/mixed-esxi.pcap                              # a table
    dissect902 analyze samples/mixed-esxi.pcap -f csv --table tls_records     # every TLS record
    dissect902 plot samples/mixed-esxi.pcap --kind all -o report.pdf          # every chart
    ```
    """),
    code(SETUP),
    md("""
    ## 1. Load

    `analyze()` reads the capture once and returns an `Analysis`. Its `*_frame()` methods build
    DataFrames with **declared columns and dtypes** — the same columns even when nothing was
    found, so the code below works on any capture.
    """),
    code("""
    result = analyze(SAMPLES / "mixed-esxi.pcap")
    sessions = result.sessions_frame()
    print(f"{len(sessions)} sessions, {len(sessions.columns)} columns")
    sessions.dtypes.value_counts()
    """),
    md("""
    Every column is documented; `frames.describe()` prints the schema (the CLI has
    `dissect902 analyze --describe sessions`). A few of the most useful:
    """),
    code("""
    from dissect.port902 import frames

    doc = pd.DataFrame([(c, t, d) for c, (t, d) in frames.SESSIONS.items()], columns=["column", "dtype", "meaning"])
    doc[doc["column"].isin(["state", "conn_state", "history", "transport", "tls_handshakes", "product",
                            "orig_bytes", "resp_bytes", "feature", "confidence", "top_reason"])]
    """),
    code("""
    overview = sessions[["uid", "start", "orig_ip", "resp_ip", "resp_port", "duration_s", "state", "transport",
                         "tls_version", "product", "orig_bytes", "resp_bytes", "feature", "confidence"]]
    overview
    """),
    md("""
    Zeek's conventions apply: `orig_` is the client, `resp_` the server; `history` spells the
    TCP flags (upper case = client); `conn_state` is Zeek's summary (`SF` normal, `S0` no
    answer, `REJ` refused, `OTH` began before the capture).

    ## 2. Filter

    Plain pandas. Consoles only:
    """),
    code("""
    consoles = sessions.query("feature == 'MKS'")
    consoles[["uid", "orig_ip", "resp_ip", "duration_s", "tls_version", "tls_handshakes", "resp_bytes", "top_reason"]]
    """),
    md("""
    Sessions that used no feature, grouped by client — an attacker stands out:
    """),
    code("""
    (sessions.query("feature == 'NONE'")
             .groupby("orig_ip")
             .agg(sessions=("uid", "count"), servers=("resp_ip", "nunique"), first=("start", "min"),
                  bytes_to_server=("orig_bytes", "sum"), reason=("top_reason", "first")))
    """),
    md("""
    10.50.66.6 opened five connections to two hosts. Four only ever exchanged login-sized
    records: four `USER`/`PASS` pairs in the first one (a Hydra-style tool retrying on one
    connection [S5]), then one per connection (Medusa-style [S6]). The fifth is an 8-byte probe
    that the SSL-only daemon answered by closing (OpenVAS sends `TEST` [S33]). Over TLS the
    passwords are invisible, but the record sizes are not.

    Volume per feature and direction:
    """),
    code("""
    by_feature = (sessions.groupby("feature", observed=True)
                          .agg(sessions=("uid", "count"), client_bytes=("orig_bytes", "sum"),
                               server_bytes=("resp_bytes", "sum"), longest_s=("duration_s", "max")))
    by_feature.sort_values("server_bytes", ascending=False)
    """),
    md("""
    ## 3. Traffic by feature

    `plots.bytes_over_time` bins the payload and stacks it by feature; the top panel is
    server → client, the bottom one client → server, each with its own unit.
    """),
    code("""
    plots.bytes_over_time(result)
    """),
    md("""
    The numbers behind the chart are a DataFrame too, so a question like "how much did each
    feature move per 30 s?" is a pivot away:
    """),
    code("""
    traffic = plots.traffic_frame(result, bin_s=30)  # t_s: bin start, seconds since the first packet
    traffic.pivot_table(index="t_s", columns="feature", values="bytes", aggfunc="sum", fill_value=0, observed=True)
    """),
    md("""
    Every chart takes the same filters: `features=[...]` or `uids=[...]`, or a filtered
    sessions frame (with the other frames passed alongside). Consoles only, in 5-second bins:
    """),
    code("""
    plots.bytes_over_time(result, features=["MKS"], bin_s=5, title="Console traffic only")
    """),
    md("""
    Per host and per client: who talks to whom, and with which feature. Session counts matter as
    much as bytes — failed and probing connections carry almost none.
    """),
    code("""
    plots.host_totals(result)
    """),
    md("""
    ## 4. Sessions on a timeline
    """),
    code("""
    plots.session_timeline(result)
    """),
    md("""
    Arrows link *reconnects*: a session from the same client shortly after one that failed
    (here the brute-force retries), or a console reopened. `plots.links_frame` lists them with
    the rule that matched; the rule is `dissect.port902.infer.reconnects`, the same one the
    diagnosis uses for its vMotion and retry notes:
    """),
    code("""
    plots.links_frame(result)
    """),
    md("""
    ## 5. Drill into one session

    Take the console that moved the most data:
    """),
    code("""
    uid = consoles.sort_values("resp_bytes", ascending=False)["uid"].iloc[0]
    rec = result.session(uid)  # the SessionRecord behind the row
    facts = rec.to_dict()
    {k: facts[k] for k in ("uid", "client", "server", "duration_s", "state", "history", "transport", "feature",
                           "confidence")}
    """),
    code("""
    facts["banner"]
    """),
    code("""
    result.handshakes_frame().query("uid == @uid")[["index", "frame", "client_versions", "version", "cipher",
                                                   "ja4", "cert_sha1"]]
    """),
    md("""
    This console negotiated **TLS 1.3** both times, so the certificate is encrypted
    (`cert_sha1` is empty) — the thumbprint can only be checked on the host. The JA4
    fingerprint of the ClientHello identifies the client's TLS stack; public JA3/JA4 values for
    VMRC or VDDK do not exist (protocol.md §8), so collect your own from known-good traffic.

    The records, by handshake and direction:
    """),
    code("""
    records = result.tls_records_frame().query("uid == @uid")
    records.groupby(["handshake", "direction", "content_type"], observed=True)["length"].agg(["count", "median", "max"])
    """),
    md("""
    TLS 1.3 adds 17 bytes per record (16-byte tag + the inner content type), so the client's
    typical records decode as RFB messages [S25]: 25 bytes = an 8-byte KeyEvent, 23 = a 6-byte
    PointerEvent, 27 = a 10-byte FramebufferUpdateRequest.
    """),
    code("""
    client = records.query("handshake == 2 and direction == 'client_to_server' and content_type == 'application_data'")
    rfb = {8: "KeyEvent", 6: "PointerEvent", 10: "FramebufferUpdateRequest"}
    sizes = (client["length"] - 17).value_counts().head(3).rename("records").to_frame()
    sizes["RFB message"] = [rfb.get(int(n), "?") for n in sizes.index]
    sizes.rename_axis("plaintext bytes")
    """),
    md("""
    Where are the pauses? Gaps of more than a second between client records are the moments
    nobody typed:
    """),
    code("""
    gaps = client["ts"].diff().dt.total_seconds()
    pauses = client.assign(pause_s=gaps).query("pause_s > 1")[["frame", "ts", "pause_s"]]
    print(f"{len(client)} client records after the hand-off, {len(pauses)} pauses longer than 1 s")
    pauses
    """),
    code("""
    plots.fingerprints(result, uids=[uid])
    """),
    md("""
    The fingerprint shows the same story: bursts of typing (triangles at ~25 bytes), screen
    updates (circles), silences. The classifier's explanation of its verdict:
    """),
    code("""
    for reason in rec.reasons:
        print("-", reason)
    """),
    md("""
    ### A cleartext NFC session

    VDDK's `nbd` transport continues **in clear** after TLS #1, so the NFC messages themselves
    are readable [S20][S21]:
    """),
    code("""
    nbd_uid = sessions.query("transport == 'tls+clear'")["uid"].iloc[0]
    nbd = result.session(nbd_uid)
    print(f"{nbd_uid}: {nbd.client} -> {nbd.server}, {nbd.duration_s:.3f} s")
    print("classic NFC messages:", nbd.nfc_message_types)
    print("AIO frames:", nbd.nfc_aio_types)
    print(f"disk data: {nbd.nfc_data_bytes:,} bytes; paths: {nbd.nfc_paths}")
    """),
    md("""
    A backup read of 160 KiB of disk (the lab injected two lost segments; TCP retransmitted them
    — see `retransmissions` in the sessions frame). The classic 264-byte handshake messages come
    first, then `OPEN_SESSION`, `OPEN_FILE`, `IO` requests answered by up to 64 KiB fragments,
    `CLOSE_FILE`, `CLOSE_SESSION` (protocol.md §5.5).

    ## 6. Anything odd?

    Malformed or unexpected input never raises: it becomes a row in the `weird` table (empty
    here — the lab writes clean captures) and `dissect902 analyze --strict` exits 1 when there is
    any.
    """),
    code("""
    result.weird_frame()
    """),
    md("""
    ## Exporting

    ```python
    sessions.to_csv("sessions.csv", index=False)
    result.tls_records_frame().to_parquet("records.parquet")   # needs pyarrow
    plots.save(plots.session_timeline(result), "timeline.svg")  # .png, .svg or .pdf
    ```

    Next: notebook 3, troubleshooting a console that won't open.
    """),
]

# ---------------------------------------------------------------------------------------------
# 3. Troubleshooting a console that won't open
# ---------------------------------------------------------------------------------------------

DOCTOR = [
    md("""
    # Troubleshooting a console that won't open

    A classic help-desk ticket: *"I can log in to vCenter with the vSphere Client, but the VM
    console does not open."* The seed article explains why this happens so often: the console
    runs as a separate client (`vmware-vmrc.exe`), and it talks to **vCenter and directly to the
    ESXi host** the VM runs on — on port 902. vCenter hands it a short-lived ticket; the rest is
    between the client and the host. So the console fails when the client

    1. **cannot resolve the ESXi host's name** (vCenter knows hosts by name; the client's DNS may not),
    2. **cannot reach the host** at the IP level, or
    3. **is blocked on 902** by a firewall on the way.

    After a **vMotion**, VMRC asks vCenter where the VM went and reconnects to the new host. Mac
    and HTML5 consoles are different again: they go through vCenter's console relay on 7331/7343
    and never touch 902 themselves (protocol.md §4.4).

    `dissect902`'s diagnosis (`infer/diagnose/`, also `dissect902 doctor CAPTURE`) checks each of
    these steps in a capture and ranks what could explain the failure. This notebook runs it on
    the failure captures in `samples/doctor/`, one per cause.

    **Where to capture:** on the client that opens the console, with a filter wide enough for
    every step, e.g.

    ```sh
    tcpdump -i any -w console.pcap 'port 53 or port 902 or port 443 or port 7331 or port 7343 or icmp or icmp6'
    ```
    """),
    code(SETUP + '''

from dissect.port902.infer.diagnose import FINDING_KINDS, Diagnostics

DOCTOR = SAMPLES / "doctor"


def diagnose(name):
    """Analyse one failure capture with the diagnosis observer; return (analysis, diagnostics)."""
    result = analyze(DOCTOR / name, observers=[Diagnostics()])
    return result, result.extras["diagnostics"]


def findings(diag):
    return diag.findings_frame()[["rank", "likelihood", "severity", "kind", "title", "evidence_frames", "advice"]]'''),
    md("""
    The diagnosis is an *observer*: `analyze()` feeds it the packets it asks for (DNS, ICMP
    errors, UDP 902 heartbeats, connection control on 443/7331/7343) alongside the port-902
    sessions, and it builds its findings when the capture ends (`analyze()` runs it by default;
    the helper above passes it explicitly to show where the findings come from). Each finding
    names the frames that prove it (open them in Wireshark), the hosts, and what to do. The
    kinds it knows:
    """),
    code("""
    pd.DataFrame(FINDING_KINDS.items(), columns=["kind", "meaning"])
    """),
    md("""
    ## 1. Name resolution

    `dns-nxdomain.pcap`: the vSphere Client works (HTTPS to vCenter), then the client asks DNS
    for `esxi-07.corp.example` and gets NXDOMAIN — twice.
    """),
    code("""
    result, diag = diagnose("dns-nxdomain.pcap")
    findings(diag)
    """),
    code("""
    diag.dns_frame()[["client", "name", "qtypes", "queries", "outcome", "failed", "resolvers"]]
    """),
    md("""
    And port 902? Nothing at all — the console never got as far as the host:
    """),
    code("""
    plots.session_timeline(result)
    """),
    md("""
    An empty 902 picture is itself evidence: when users report a console failure and the
    capture shows no SYN to 902, look *before* 902 — DNS, or the vCenter side. The same holds
    for a resolver that fails (`SERVFAIL`) or never answers:
    """),
    code("""
    rows = []
    for name in ("dns-nxdomain.pcap", "dns-servfail.pcap", "dns-no-answer.pcap"):
        _, d = diagnose(name)
        top = d.findings_frame().iloc[0]
        rows.append((name, top["kind"], top["likelihood"], top["title"]))
    pd.DataFrame(rows, columns=["capture", "top finding", "likelihood", "title"])
    """),
    md("""
    ## 2. Reachability and firewalls

    `syn-no-answer.pcap`: the name resolves, but the SYNs to `esxi-07:902` are never answered,
    while HTTPS to the *same host* works — so the host is up and only 902 is filtered.
    """),
    code("""
    result, diag = diagnose("syn-no-answer.pcap")
    findings(diag)
    """),
    code("""
    plots.session_timeline(result)
    """),
    md("""
    The ×'s are the client's SYN retransmissions (TCP backs off: 1 s, 2 s, 4 s …). A silent drop
    looks like this; an active rejection looks different. `refused.pcap` shows a reset in answer
    to every SYN (nothing listens, or a firewall sends RSTs), and `icmp-prohibited.pcap` an ICMP
    "communication administratively prohibited" from the firewall itself, quoting the SYN — the
    most explicit evidence a capture can hold:
    """),
    code("""
    for name in ("refused.pcap", "icmp-prohibited.pcap"):
        _, d = diagnose(name)
        f = d.findings_frame().iloc[0]
        print(f"{name}: {f['kind']} ({f['likelihood']:.2f})\\n  {f['detail']}\\n  advice: {f['advice']}\\n")
    """),
    md("""
    ## 3. The certificate

    Clients pin the host certificate by the thumbprint they got with the ticket [S13][S14][S23].
    If the host's certificate changed (renewed, replaced by VMCA) the client refuses TLS #1.
    `certificate-rejected.pcap` shows three ways that looks on the wire: a fatal TLS alert
    right after the server's Certificate, a reset right after it, and a completed handshake
    followed by a close without a single authd command.
    """),
    code("""
    result, diag = diagnose("certificate-rejected.pcap")
    findings(diag)
    """),
    code("""
    result.handshakes_frame()[["uid", "frame", "version", "cert_sha1", "alerts"]]
    """),
    code("""
    plots.session_timeline(result)
    """),
    md("""
    Three attempts, 2 s apart, each linked to the previous one as a *retry*: the client keeps
    trying with the same pinned thumbprint. Compare `cert_sha1` with the thumbprint vCenter
    shows for the host.

    ## 4. authd says no

    Only plaintext daemons (GSX era, Workstation's 912) show authd's replies; on ESXi they are
    inside TLS. `login-530.pcap` is a rejected password, `connect-failed.pcap` a `CONNECT` to a
    VM the host does not have (`553`, VMAD_NOSUCHVM in authd's constant table [S19]) and one that
    gets no reply at all:
    """),
    code("""
    result, diag = diagnose("connect-failed.pcap")
    findings(diag)
    """),
    code("""
    result.dialogue_frame()[["uid", "frame", "direction", "command", "code", "text"]]
    """),
    md("""
    ## 5. A console that dies, and one that recovers

    `reset-midstream.pcap`: a working console is reset by the server after ~3 s.
    `client-retry.pcap`: the same, but 1.5 s later the client opens the console again on the same
    host and it works — the diagnosis lowers the likelihood of the reset (the client recovered)
    and adds a note.
    """),
    code("""
    result, diag = diagnose("client-retry.pcap")
    findings(diag)
    """),
    code("""
    plots.session_timeline(result)
    """),
    code("""
    plots.bytes_over_time(result, bin_s=0.25)
    """),
    md("""
    The traffic chart tells the same story in bytes: the first console's opening screen (the
    tall bar on the left), its trickle of keyboard and pointer input below, then silence at the
    reset — and a second opening screen when the new console starts.

    ## 6. vMotion: the console follows its VM

    The seed article describes it: when the VM moves, VMRC asks vCenter where it went and
    reconnects to the new host. In `vmotion.pcap` the console on esxi-a ends, the client talks to
    vCenter over HTTPS, resolves esxi-b and opens the console there. That is not a failure — the
    finding is a note (`severity` info).
    """),
    code("""
    result, diag = diagnose("vmotion.pcap")
    findings(diag)
    """),
    code("""
    plots.session_timeline(result)
    """),
    md("""
    The UDP 902 heartbeats in the same capture tell which addresses are ESXi hosts and which is
    vCenter (vpxa sends them from each host to vCenter [S35][S41]) — useful when a capture comes
    without a network diagram:
    """),
    code("""
    diag.heartbeats_frame()[["esxi", "vcenter", "build", "version", "heartbeats", "interval_s"]]
    """),
    md("""
    ## 7. When there is no problem

    `html5-console.pcap`: a Mac opens the console through vCenter's relay (7331 in clear, 7343
    over TLS); vCenter itself opens the 902 connection to the host. The diagnosis finds nothing
    wrong and reports which console path was used:
    """),
    code("""
    result, diag = diagnose("html5-console.pcap")
    print(f"{len(diag.findings)} finding(s)")
    diag.console_paths_frame()[["kind", "client", "server", "state", "http_target", "session_uid"]]
    """),
    md("""
    ## 8. All failure captures at once

    Each capture's labels (`<name>.labels.json`) say what the diagnosis must find. A triage table
    of the top finding per capture, checked against the labels:
    """),
    code("""
    import json

    rows = []
    for path in sorted(DOCTOR.glob("*.pcap")):
        result = analyze(path, observers=[Diagnostics()])
        f = result.extras["diagnostics"].findings_frame()
        expected = json.loads(path.with_suffix(".labels.json").read_text())["doctor"]
        problems = set(f.loc[f["severity"] == "problem", "kind"].astype(str))
        rows.append({
            "capture": path.name,
            "902 sessions": len(result.sessions),
            "top finding": f["kind"].iloc[0] if len(f) else "-",
            "likelihood": f["likelihood"].iloc[0] if len(f) else None,
            "problems found": ", ".join(sorted(problems)) or "-",
            "as labelled": problems == set(expected["expected_problem_kinds"]),
        })
    triage = pd.DataFrame(rows)
    triage
    """),
    md("""
    ## Checklist

    When a console won't open, in the order the evidence usually appears:

    1. **Is there a DNS lookup for the host, and did it resolve?** (`dns_*` findings; no 902
       SYN at all is a hint to look here.)
    2. **Did the SYN to 902 get an answer?** No answer: filtered or host down. RST: refused.
       ICMP prohibited: a firewall said so.
    3. **Did TLS #1 complete?** An alert or a hang-up right after the certificate: the
       thumbprint does not match.
    4. **Did authd accept?** Visible only on plaintext daemons; on ESXi a session that ends right
       after the dialogue is the hint.
    5. **Did it work and then stop?** Resets; reconnects after a vMotion are normal.

    `dissect902 doctor capture.pcap` prints the same findings on the command line (exit code 1
    when it found a problem).
    """),
]

# ---------------------------------------------------------------------------------------------
# 4. How the classifier decides
# ---------------------------------------------------------------------------------------------

CLASSIFIER = [
    md("""
    # How the classifier decides

    Once TLS starts, which feature a session uses is not readable: `CONNECT <vmx> mks` (a
    console) and `PROXY vpxa-nfcssl` (a disk copy) are both encrypted. Yet `dissect902` labels
    every session **MKS**, **NFC**, **SOAP**, **VMXARGS**, **NONE** (no feature used) or
    **UNKNOWN**, with a confidence and the reasons. This notebook opens that decision:
    the *features* it computes, the *rules* in `infer/classify.py`, and how the features are
    distributed for each label across all the sample captures.

    The evidence is used strongest first:

    1. **What is readable decides outright** — an authd dialogue in clear (`CONNECT … mks`,
       `PROXY …`), cleartext NFC messages after TLS #1.
    2. **TLS #1 decoded from its record sizes** — authd writes one line per TLS record, and
       every line is fixed text plus an argument, so the plaintext size of each record says
       which line it can be. The sizes are aligned with the *grammar* of each feature's
       dialogue (`infer/dialogue.py`); the most likely reading decides.
    3. **Only where TLS #1 is not visible** (a capture that began mid-connection): the
       shape of what follows — small client messages with pauses (a human at a keyboard)
       versus lockstep bulk transfer.

    Sizes come *from the grammar*, not from values fitted to a capture.
    """),
    code(SETUP + '''
import json
import math

from dissect.port902.infer import classify
from dissect.port902.infer import features
from dissect.port902.infer import dialogue as dlg

CAPTURES = sorted(SAMPLES.glob("*.pcap*")) + sorted((SAMPLES / "doctor").glob("*.pcap"))
result = analyze(CAPTURES)
feats = result.features_frame()
print(f"{len(CAPTURES)} captures, {len(feats)} port-902 sessions")'''),
    md("""
    ## 1. From records to plaintext sizes

    The record layer stays readable: each TLS record's length, direction and time. The cipher's
    overhead is derived from the negotiated suite (`infer_dialogue.plaintext_interval`):
    AES-GCM in TLS 1.2 adds 24 bytes per record, TLS 1.3 adds 17, CBC suites add an IV, a MAC
    and 1–16 bytes of padding — so under CBC a record's plaintext is known to a block, an
    *interval*. TLS 1.3's encrypted handshake and the client's Finished travel as application
    data too; they are recognised by their place and left out.
    """),
    code("""
    all_sessions = result.sessions_frame()
    console_uid = all_sessions[all_sessions["source"].str.endswith("esxi8-console.pcap")]["uid"].iloc[0]
    console = result.session(console_uid)
    obs, tls13 = dlg.tls1_observations(console)
    pd.DataFrame([(o.frame, "C->S" if o.direction == 0 else "S->C", o.size) for o in obs],
                 columns=["frame", "direction", "plaintext bytes"])
    """),
    md("""
    ## 2. The grammar: what each line's size can be

    Every line type has a size model: fixed text plus an argument. Some replies *echo* their
    command's argument — `331 Password required for <name>.` is 22 bytes longer than
    `USER <name>`, and `200 Connect <vmx>` exactly as long as `CONNECT <vmx> mks` — so their size
    is tied to the command's. The table is read from the code:
    """),
    code("""
    rows = []
    for name in ["USER", "R331", "PASS", "R230", "R530", "THUMB16", "R200TP", "CONNECT", "R200CONNECT",
                 "SESSION_BANNER", "RBANNER", "THUMB_PLAIN", "PROXY", "R200HA", "HTTP_REQ", "HTTP_RESP", "VMXCMD"]:
        tok = getattr(dlg.grammar, name)  # the size models live in infer/dialogue/grammar.py
        exact = ", ".join(map(str, tok.size.exact)) if tok.size.exact else ""
        rows.append((tok.text, exact, f"{tok.size.lo}–{tok.size.hi}" + (" (log-uniform)" if tok.size.log else ""),
                     f"{tok.fixed} + len(<{tok.echo}>)" if tok.echo else ""))
    pd.DataFrame(rows, columns=["line", "exact sizes", "range", "echo"])
    """),
    md("""
    Every decoded record of every sample, by the line it was read as: the sizes fall where the
    grammar puts them (lines with an argument spread with its length; fixed lines sit on one
    value; the echoes mirror their commands).
    """),
    code("""
    import matplotlib.pyplot as plt

    points = [(row["line"], int(str(row["size"]).split("-")[0])) for rec in result.sessions
              for row in rec.inferred_dialogue if row["line"] != "(unexplained)"]
    lines = sorted({line for line, _ in points}, key=lambda l: min(s for x, s in points if x == l))
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(lines) + 1))
    for y, line in enumerate(lines):
        sizes = [s for x, s in points if x == line]
        ax.scatter(sizes, [y] * len(sizes), s=14, alpha=0.6)
    ax.set_yticks(range(len(lines)), lines, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("plaintext bytes of the record (log scale)")
    ax.set_title("TLS #1 records of the samples, by the line the decoder read")
    fig.tight_layout()
    """),
    md("""
    Each feature is a **template** of such lines (`infer_dialogue.TEMPLATES`): login attempts
    only (`NONE`), the MKS set-up (ticket login, `THUMBPRINT`, `CONNECT <vmx> mks`), three NFC
    set-ups (VDDK, nfclib, photon), SOAP after a login, and the VMXARGS model. A template may be
    cut short anywhere (the session ended), a client may put several lines in one record
    (pipelining, at a cost), a TLS 1.3 server sends NewSessionTickets before its first reply,
    and a record no line explains costs a penalty instead of breaking the reading.
    """),
    code("""
    pd.DataFrame([(t.label, t.name, " · ".join("+".join(tok.name for tok in s.group)
                                                 + ("?" if s.lo == 0 and s.hi == 1 else "*" if s.hi == 0 else "")
                                                 for s in t.slots), t.handoff, t.model)
                  for t in dlg.TEMPLATES], columns=["label", "template", "lines (? optional, * repeated)",
                                                    "hand-off", "lab model"])
    """),
    md("""
    ## 3. Decoding one session

    The decoder aligns the records with every template and scores each alignment as a
    log-likelihood; the best template per label competes with the others. Here is the console,
    record by record (`inferred_dialogue` in the JSON output), with what the runner-up label
    would have read instead:
    """),
    code("""
    pd.DataFrame(console.inferred_dialogue)[["frame", "direction", "size", "line", "alternatives"]]
    """),
    code("""
    handoff = "tls2" if len(console.handshakes) > 1 else "none"
    decoded = dlg.decode(console, handoff, classify.first_after(console))
    pd.DataFrame([(p.template.label, p.template.name, round(p.loglik, 1), round(decoded.posterior.get(p.template.label, 0), 6),
                   dlg.describe(p, limit=8)) for p in decoded.parses],
                 columns=["label", "best template", "log-likelihood", "posterior", "reading"])
    """),
    md("""
    The **confidence** is the winner's likelihood against the runner-up label,
    p₁ / (p₁ + p₂), capped at 0.99 — at 0.85 for SOAP and VMXARGS, whose wire form is the lab's
    model (no public definition), and at 0.8 when the capture began mid-connection. What follows
    TLS #1 is evidence too: a second handshake whose first client record is the 16-byte MKS
    token, or a 264-byte NFC message, or the stream going on in clear (NFC).

    ## 4. One verdict per label

    `classify.classify(record)` returns a `Verdict` (label, confidence, reasons). The first
    reason is the decoded dialogue; the last says which reading lost, and by how much:
    """),
    code("""
    sessions = result.sessions_frame()
    for label in ["MKS", "NFC", "SOAP", "VMXARGS", "NONE"]:
        row = sessions[sessions["feature"] == label].sort_values("confidence", ascending=False).iloc[0]
        rec = result.session(row["uid"])
        print(f"{label}  {rec.uid[:9]}  {rec.client} -> {rec.server}  confidence {rec.confidence}")
        for reason in rec.reasons:
            print("   -", reason)
        print()
    """),
    md("""
    `features_frame()` says for every session which evidence decided (`judged_as`: `clear`,
    `tls1` for the decoder, `handoff` / `midstream` for the shape rules), the winning template,
    its reading and the margin (log₁₀ likelihood ratio against the best other label):
    """),
    code("""
    feats.set_index("uid")[["feature", "confidence", "judged_as", "decoded_as", "decoded_margin",
                            "decoded_dialogue"]]
    """),
    md("""
    ## 5. What if?

    The echo ties are what make a reading certain. Take the console's records and pretend the
    `200 Connect` reply had been 10 bytes shorter than the `CONNECT` line — no longer an echo of
    the path — and see how the posterior moves:
    """),
    code("""
    from types import SimpleNamespace

    records = list(console.records())
    last_reply = max(i for i, r in enumerate(records) if r[2] == 1 and r[3] == 23 and r[5] == 1)
    changed = [r if i != last_reply else r[:4] + (r[4] - 10,) + r[5:] for i, r in enumerate(records)]
    fake = SimpleNamespace(handshakes=console.handshakes, records=lambda: iter(changed))
    for name, rec in (("as observed", console), ("reply 10 bytes shorter", fake)):
        d = dlg.decode(rec, handoff, classify.first_after(console))
        print(f"{name:24} -> " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(d.posterior.items(), key=lambda kv: -kv[1])[:3]))
    """),
    md("""
    One broken tie lowers the console's likelihood by the echo's odds, but the rest of the
    dialogue (a ticket login, the 29-byte `THUMBPRINT`, the 16-byte token after the second
    handshake) still reads as MKS: several independent lines carry the decision.

    ## 6. Checking against the labels

    The lab writes the true feature of every connection into `<capture>.labels.json`. Matching
    sessions to labels by their 4-tuple gives a confusion table:
    """),
    code("""
    truth = {}
    for path in CAPTURES:
        labels = json.loads(path.with_name(path.name.split(".")[0] + ".labels.json").read_text())
        for conn in labels["connections"]:
            key = (conn["client"]["ip"], conn["client"]["port"], conn["server"]["ip"], conn["server"]["port"])
            truth[key] = (conn["feature"], bool(conn.get("expected", {}).get("model")))

    keys = list(zip(sessions["orig_ip"], sessions["orig_port"], sessions["resp_ip"], sessions["resp_port"]))
    sessions["label"] = [truth.get(k, ("?", False))[0] for k in keys]
    sessions["lab_model"] = [truth.get(k, ("?", False))[1] for k in keys]
    pd.crosstab(sessions["label"], sessions["feature"].astype(str), rownames=["lab label"], colnames=["classifier"])
    """),
    code("""
    disagree = sessions[sessions["label"] != sessions["feature"].astype(str)]
    disagree[["uid", "source", "resp_port", "label", "feature", "confidence", "top_reason"]]
    """),
    md("""
    Agreement on the samples is a necessary check, not a proof: the lab generates traffic from
    the same protocol facts the grammar comes from. `scripts/accuracy.py` measures on fresh lab
    data and `scripts/accuracy.py --live` on captures of real processes in network namespaces;
    the test suite runs nmap, hydra, medusa, patator and openssl against a real daemon. When rows
    appear in the disagreement table for your own captures, read the `reasons` — and remember
    that a label records what the client *intended*: a console whose certificate was rejected
    never used the console, and `NONE` is then the honest answer from the wire.

    ## 7. Limits

    * **SOAP and VMXARGS** have no public wire definition (protocol.md §6); their templates are
      the lab's model, and their confidence stays ≤ 0.85.
    * **Mid-stream captures** lose the banner and usually TLS #1; the shape rules decide, and the
      confidence is capped at 0.8.
    * **CBC ciphers** blur sizes to a block: `230 User ab logged in.` and `530 Login incorrect.`
      can fall into one interval, and the login outcome is then reported as undetermined.
    """),
]


# ---------------------------------------------------------------------------------------------
# 5. MKS over 902 versus plain VNC on 5900
# ---------------------------------------------------------------------------------------------

VNC = [
    md("""
    # MKS over 902 versus plain VNC on 5900

    A VM's console can be reached two ways. The vSphere way is **MKS over authd 902**: vCenter or
    hostd hands the client a one-time ticket, the client talks to the ESXi host on 902, inside TLS,
    and after `200 Connect` a second TLS handshake carries the console (RFB with VMware
    extensions). The other way is the **vmx route**: `RemoteDisplay.vnc.enabled = TRUE`,
    `RemoteDisplay.vnc.port = 5901`, `RemoteDisplay.vnc.password = ...` in the VM's configuration,
    and any VNC viewer connects straight to that port on the host. The source article warns
    against it:

    * the console is **not encrypted**: keystrokes (including the passwords typed into the guest)
      and the screen cross the network in clear;
    * the password sits **in the vmx in clear**, and VNC Authentication (a DES challenge-response)
      uses at most **8 characters** of it; some set no password at all;
    * **every VM needs its own port**, unique across every host it can move to in a DRS cluster;
    * the connection is bound to one host's port: it **does not follow a vMotion**.

    `samples/plain-vnc.pcap` shows both routes from one admin workstation. `dissect902` recognises
    RFB by content (the server's `RFB 003.00x` greeting; ports 5900-5999 are where it looks) and
    reports it apart from the authd sessions (`analyze` JSON key `vnc`, `result.extras["vnc"]`).
    """),
    code(SETUP + """

result = analyze(SAMPLES / "plain-vnc.pcap")
vnc = result.extras["vnc"]
vnc.frame()"""),
    md("""
    ## What a plain VNC console shows to anyone on the path

    RFB (RFC 6143) opens in clear: the server's `ProtocolVersion`, the client's, the security
    types the server offers and the one the client picks, VNC Authentication's 16-byte challenge
    and response, the `SecurityResult`, then `ServerInit` with the framebuffer size and the
    **desktop name** (here the VM's name). Everything after it, every key press and every screen
    update, is as readable. One session per row, with the frames where each step was seen:
    """),
    code("""
    pd.DataFrame([{
        "server": s.server, "desktop": s.desktop_name, "security offered": ", ".join(s.security_offered),
        "chosen": s.security_chosen, "result": s.auth_result, "size": f"{s.width}x{s.height}" if s.width else None,
        "version frame": s.version_frame, "security frame": s.security_frame, "ServerInit frame": s.server_init_frame,
        "ended": f"{s.state} by {s.ended_by}",
    } for s in vnc.sessions])
    """),
    md("""
    Three consoles on **one host, three ports** (one per VM, and one attempt with a mistyped
    password). The third one chose security type **None**: whoever reaches that port has the VM's
    keyboard, mouse and screen.

    ## The same console over 902

    The MKS session to esxi-02 is an authd session: the banner is the only clear text; the login
    with the ticket, `CONNECT <vmx> mks` and the console itself travel inside TLS #1 and TLS #2.
    What stays visible is what the classifier reads (record sizes, the second handshake, timing):
    """),
    code("""
    result.sessions_frame()[["uid", "resp_ip", "resp_port", "banner_version", "transport", "tls_version",
                             "tls_handshakes", "server_cert_sha1", "feature", "confidence", "top_reason"]]
    """),
    md("""
    ## What the diagnosis says

    `dissect902 doctor` (and `result.diagnostics`) flags each host with plain VNC consoles
    (`vnc_console`, a warning: it lists the ports, one per VM), consoles without authentication
    (`vnc_no_auth`, a problem) and a VNC console that the host ended while the same client then
    opened a console over 902 on another host (`vnc_no_follow`): the VM moved, the VNC route
    did not follow.
    """),
    code("""
    f = result.diagnostics.findings_frame()
    f[f["kind"].str.startswith("vnc")][["rank", "severity", "kind", "title", "evidence_frames", "related_uids"]]
    """),
    code("""
    print(next(x for x in result.diagnostics.findings if x.kind == "vnc_no_follow").detail)
    """),
    md("""
    ## The vMotion, side by side

    db01's VNC console on esxi-01:5901 ends with the **server's RST** when the VM leaves the host;
    2 s later the admin resolves esxi-02 and opens db01's console again, this time through vSphere:
    an MKS console over 902 on the new host. A VNC client would have had to know the new host and
    a port that is free there.
    """),
    code("""
    rows = [{"start": pd.to_datetime(s.start, unit="s", utc=True), "end": pd.to_datetime(s.end, unit="s", utc=True),
             "route": "plain VNC", "server": s.server, "what": f"{s.desktop_name or '-'} ({s.security_chosen})",
             "ended": s.state} for s in vnc.sessions]
    rows += [{"start": pd.to_datetime(s.start, unit="s", utc=True), "end": pd.to_datetime(s.end, unit="s", utc=True),
              "route": "MKS over 902", "server": s.server, "what": s.feature, "ended": s.state}
             for s in result.sessions]
    pd.DataFrame(rows).sort_values("start").reset_index(drop=True)
    """),
    md("""
    Both routes on one time axis: each bar is a connection, labelled with what it carried.
    """),
    code("""
    import matplotlib.pyplot as plt

    timeline = pd.DataFrame(rows).sort_values("start").reset_index(drop=True)
    t0 = timeline["start"].min()
    fig, ax = plt.subplots(figsize=(9, 2.8))
    for i, r in timeline.iterrows():
        left = (r["start"] - t0).total_seconds()
        width = max(0.3, (r["end"] - r["start"]).total_seconds())
        ax.barh(i, width, left=left, color="#e377c2" if r["route"] == "plain VNC" else "#1f77b4")
        ax.text(left + width + 0.5, i, f"{r['server']}  {r['what']}  ({r['ended']})", va="center", fontsize=8)
    ax.set_yticks(range(len(timeline)), timeline["route"])
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the first connection")
    ax.set_xlim(0, (timeline["end"].max() - t0).total_seconds() * 1.6)
    ax.set_title("plain VNC (pink) and MKS over 902 (blue)")
    fig.tight_layout()
    """),
    md("""
    ## Exercises

    1. Which frames would you open in Wireshark to show a colleague the desktop name of each VNC
       console? (`ServerInit frame` above; `dissect902 wireshark-plugin` adds authd fields, and
       Wireshark's own VNC dissector reads port 5901 with *Decode As... VNC*.)
    2. Compare the bytes the client sent in the VNC sessions with the MKS session: which one
       would reveal a password typed into the guest's login prompt?
    3. Capture a real one: `Xvfb :1 & x11vnc -display :1 -rfbport 5901 -rfbauth ~/.vnc/passwd`,
       connect with `vncdo -s 127.0.0.1::5901 -p PASSWORD capture x.png` under
       `tcpdump -i lo -w vnc.pcap port 5901`, and run `dissect902 doctor vnc.pcap`
       (`tests/test_vnc.py` does exactly this).
    """),
]

NOTEBOOK_SPECS = {
    "01-port-902-tour.ipynb": ("A guided tour of port 902", TOUR),
    "02-investigating-a-capture.ipynb": ("Investigating a capture", INVESTIGATE),
    "03-console-wont-open.ipynb": ("Troubleshooting a console that won't open", DOCTOR),
    "04-how-the-classifier-decides.ipynb": ("How the classifier decides", CLASSIFIER),
    "05-mks-versus-plain-vnc.ipynb": ("MKS over 902 versus plain VNC on 5900", VNC),
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` with fixed cell ids and no outputs."""
    title, cells = NOTEBOOK_SPECS[name]
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "title": title,
    }
    stem = name.split("-", 1)[0]
    for i, (kind, text) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        cell["id"] = f"nb{stem}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook on disk differs from this script")
    ap.add_argument("--out", type=Path, default=NOTEBOOKS, help="directory to write to (default: notebooks/)")
    args = ap.parse_args(argv)
    stale = []
    for name in NOTEBOOK_SPECS:
        path = args.out / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date (run python scripts/make_notebooks.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
