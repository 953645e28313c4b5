"""vim25 SOAP sessions with the rhythm of real API clients: call mixes, think times, keep-alive.

Why: ``soap.session`` gives the four calls of a minimal script. API clients in the field look
different by kind: a monitoring collector fires dozens of property retrievals back to back, an
inventory UI waits seconds between clicks, an automation tool holds its session open with
keep-alive calls (``CurrentTime``) between jobs, and event watchers park a ``WaitForUpdatesEx``
long poll that the server answers only when something changes or its wait expires. Requests
and responses are HTTP/1.1 with keep-alive, varying user agents and API versions, and response
sizes that follow the number of objects retrieved. Carried inside TLS #1 after a login this is
the lab's SOAP-over-902 *model* (protocol.md §6: no public wire definition).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from .channel import CLIENT, SERVER, Step
from .pace import Pace
from .soap import ENVELOPE, URN, _vm_objects

AGENTS = (
    ("VMware vim-java 1.0", "8.0.2.0"),
    ("pyvmomi Python/3.10.12 (Linux; 5.15.0; x86_64)", "8.0.1.0"),
    ("govmomi/0.37.1 (go1.21.5; linux; amd64)", "8.0.2.0"),
    ("VMware-client/6.7.0", "6.7.3"),
    ("PowerCLI/13.1.0", "8.0.1.0"),
    ("VMware VI Client/5.5.0", "5.5"),
    ("Java/1.8.0_202", "6.0"),
)
# client kind -> (think time range s, call count range, call weights)
KINDS = {
    "collector": ((0.005, 0.08), (15, 120), {"RetrievePropertiesEx": 6, "ContinueRetrievePropertiesEx": 2,
                                            "QueryPerf": 4, "CurrentTime": 0.5}),
    "ui": ((0.4, 9.0), (6, 40), {"RetrievePropertiesEx": 5, "ContinueRetrievePropertiesEx": 1,
                                  "CreateContainerView": 1, "QueryPerf": 1, "CurrentTime": 0.3}),
    "automation": ((0.05, 2.0), (4, 30), {"RetrievePropertiesEx": 3, "CreateContainerView": 1,
                                          "ReconfigVM_Task": 1, "CurrentTime": 2}),
    "watcher": ((0.01, 0.2), (3, 25), {"WaitForUpdatesEx": 6, "RetrievePropertiesEx": 1, "CurrentTime": 0.5}),
}


@dataclass(frozen=True)
class SoapPlan:
    """Parameters of one SOAP session (recorded in labels as ``traffic``)."""

    kind: str
    calls: int
    think: tuple[float, float]
    keepalive: float | None        # seconds between CurrentTime calls while idle, or None
    idle: float                    # seconds the session sits idle (keep-alive only) in between
    objects: int                   # inventory size: drives RetrieveProperties response sizes
    agent: int
    logout: bool

    def as_dict(self) -> dict:
        return {"model": "soap", "kind": self.kind, "calls": self.calls, "think_s": [round(x, 3) for x in self.think],
                "keepalive_s": self.keepalive, "idle_s": round(self.idle, 1), "objects": self.objects,
                "agent": AGENTS[self.agent][0], "logout": self.logout}


def draw_plan(rng: random.Random, kind: str | None = None) -> SoapPlan:
    """A random SOAP session plan."""
    kind = kind or rng.choice(list(KINDS))
    think, (lo, hi), _ = KINDS[kind]
    keepalive = rng.choice((None, None, 10.0, 30.0, 60.0, 120.0))
    idle = 0.0 if keepalive is None else rng.uniform(keepalive * 1.5, keepalive * 8)
    return SoapPlan(kind, rng.randint(lo, hi), think, keepalive, idle, int(10 ** rng.uniform(0.5, 3.3)),
                    rng.randrange(len(AGENTS)), rng.random() < 0.7)


def _request(host: str, body: str, agent: int, cookie: str | None) -> bytes:
    ua, version = AGENTS[agent]
    payload = ENVELOPE.format(body=body).encode()
    headers = ["POST /sdk HTTP/1.1", f"Host: {host}", f"User-Agent: {ua}", "Content-Type: text/xml; charset=utf-8",
               f'SOAPAction: "urn:vim25/{version}"', f"Content-Length: {len(payload)}", "Connection: keep-alive"]
    if cookie:
        headers.append(f'Cookie: vmware_soap_session="{cookie}"')
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


def _response(rng: random.Random, body: str, cookie: str | None = None) -> bytes:
    payload = ENVELOPE.format(body=body).encode()
    day = rng.randint(1, 28)
    headers = ["HTTP/1.1 200 OK", f"Date: Tue, {day:02d} May 2024 09:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} GMT",
               "Cache-Control: no-cache", "Connection: Keep-Alive", "Content-Type: text/xml; charset=utf-8",
               "X-Frame-Options: DENY"]
    if cookie:
        headers.append(f'Set-Cookie: vmware_soap_session="{cookie}"; Path=/; HttpOnly; Secure;')
    if len(payload) > 32768 and rng.random() < 0.5:         # large results come chunked
        chunks = [payload[i: i + 16384] for i in range(0, len(payload), 16384)]
        body_bytes = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
        return ("\r\n".join(headers + ["Transfer-Encoding: chunked"]) + "\r\n\r\n").encode() + body_bytes
    headers.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


def _call(rng: random.Random, host: str, method: str, plan: SoapPlan, cookie: str,
          version: int) -> tuple[bytes, bytes, float]:
    """(request, response, server time) for one API call."""
    pc = '<_this type="PropertyCollector">ha-property-collector</_this>'
    if method == "RetrievePropertiesEx":
        n = max(1, min(plan.objects, int(plan.objects * rng.uniform(0.05, 1.0))))
        req = (f"<RetrievePropertiesEx {URN}>{pc}<specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet>"
               "<pathSet>runtime.powerState</pathSet><pathSet>config.guestFullName</pathSet></propSet>"
               '<objectSet><obj type="Folder">ha-folder-root</obj><skip>false</skip></objectSet></specSet>'
               f"<options><maxObjects>{rng.choice((100, 500, 1000))}</maxObjects></options></RetrievePropertiesEx>")
        resp = f"<RetrievePropertiesExResponse {URN}><returnval>{_vm_objects(rng, n)}</returnval></RetrievePropertiesExResponse>"
        return _request(host, req, plan.agent, cookie), _response(rng, resp), 0.002 + n * 0.00005
    if method == "ContinueRetrievePropertiesEx":
        n = max(1, int(plan.objects * rng.uniform(0.05, 0.5)))
        req = f"<ContinueRetrievePropertiesEx {URN}>{pc}<token>{rng.getrandbits(32)}</token></ContinueRetrievePropertiesEx>"
        resp = (f"<ContinueRetrievePropertiesExResponse {URN}><returnval>{_vm_objects(rng, n)}</returnval>"
                "</ContinueRetrievePropertiesExResponse>")
        return _request(host, req, plan.agent, cookie), _response(rng, resp), 0.002 + n * 0.00005
    if method == "QueryPerf":
        metrics = rng.randint(4, 60)
        req = (f'<QueryPerf {URN}><_this type="PerformanceManager">ha-perfmgr</_this>'
               + "".join(f'<querySpec><entity type="VirtualMachine">{rng.randint(1, 999)}</entity>'
                         f"<maxSample>1</maxSample><intervalId>20</intervalId></querySpec>"
                         for _ in range(rng.randint(1, 8))) + "</QueryPerf>")
        values = ",".join(str(rng.randint(0, 10**6)) for _ in range(metrics * rng.randint(1, 15)))
        resp = f"<QueryPerfResponse {URN}><returnval><value><value>{values}</value></value></returnval></QueryPerfResponse>"
        return _request(host, req, plan.agent, cookie), _response(rng, resp), rng.uniform(0.005, 0.05)
    if method == "CreateContainerView":
        req = (f'<CreateContainerView {URN}><_this type="ViewManager">ViewManager</_this>'
               '<container type="Folder">ha-folder-root</container><type>VirtualMachine</type>'
               "<recursive>true</recursive></CreateContainerView>")
        resp = (f'<CreateContainerViewResponse {URN}><returnval type="ContainerView">session[{cookie[:8]}]'
                f"{rng.getrandbits(64):016x}</returnval></CreateContainerViewResponse>")
        return _request(host, req, plan.agent, cookie), _response(rng, resp), 0.003
    if method == "ReconfigVM_Task":
        req = (f'<ReconfigVM_Task {URN}><_this type="VirtualMachine">{rng.randint(1, 999)}</_this><spec>'
               f"<annotation>changed {rng.getrandbits(40):x}</annotation></spec></ReconfigVM_Task>")
        task = f"haTask-{rng.randint(1, 999)}-vim.VirtualMachine.reconfigure-{rng.randint(10**6, 10**8)}"
        resp = f'<ReconfigVM_TaskResponse {URN}><returnval type="Task">{task}</returnval></ReconfigVM_TaskResponse>'
        return _request(host, req, plan.agent, cookie), _response(rng, resp), rng.uniform(0.01, 0.1)
    if method == "WaitForUpdatesEx":
        req = (f"<WaitForUpdatesEx {URN}>{pc}<version>{version}</version><options><maxWaitSeconds>"
               f"{rng.choice((30, 60, 300))}</maxWaitSeconds></options></WaitForUpdatesEx>")
        changes = rng.randint(0, 12)
        body = "".join(f'<objectSet><kind>modify</kind><obj type="VirtualMachine">{rng.randint(1, 999)}</obj>'
                       f'<changeSet><name>summary.quickStats.overallCpuUsage</name><op>assign</op>'
                       f'<val xsi:type="xsd:int">{rng.randint(0, 9999)}</val></changeSet></objectSet>'
                       for _ in range(changes))
        resp = (f"<WaitForUpdatesExResponse {URN}><returnval><version>{version + 1}</version><filterSet>{body}"
                "</filterSet></returnval></WaitForUpdatesExResponse>")
        return _request(host, req, plan.agent, cookie), _response(rng, resp), rng.expovariate(1 / 8.0)
    req = f'<CurrentTime {URN}><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime>'
    resp = (f'<CurrentTimeResponse {URN}><returnval>2024-05-14T09:{rng.randint(0, 59):02d}:'
            f'{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}Z</returnval></CurrentTimeResponse>')
    return _request(host, req, plan.agent, cookie), _response(rng, resp), 0.0008


def session(pace: Pace, rng: random.Random, host: str, user: str, plan: SoapPlan) -> Iterator[Step]:
    """The HTTP exchanges of one SOAP session (marks ``soap_<Method>`` on the first of each)."""
    cookie = "".join(rng.choice("0123456789abcdef") for _ in range(40))
    marked: set[str] = set()
    sc = '<_this type="ServiceInstance">ServiceInstance</_this>'
    about = ('<returnval><rootFolder type="Folder">ha-folder-root</rootFolder>'
             '<propertyCollector type="PropertyCollector">ha-property-collector</propertyCollector>'
             f'<about><name>VMware ESXi</name><fullName>VMware ESXi {AGENTS[plan.agent][1]}</fullName>'
             f'<apiVersion>{AGENTS[plan.agent][1]}</apiVersion></about>'
             '<sessionManager type="SessionManager">ha-sessionmgr</sessionManager></returnval>')

    def exchange(method: str, req: bytes, resp: bytes, think: float, work: float) -> Iterator[Step]:
        mark = None if method in marked else f"soap_{method}"
        marked.add(method)
        yield Step(CLIENT, req, think, mark)
        yield Step(SERVER, resp, pace("http") + work)

    yield from exchange("RetrieveServiceContent",
                        _request(host, f"<RetrieveServiceContent {URN}>{sc}</RetrieveServiceContent>", plan.agent, None),
                        _response(rng, f"<RetrieveServiceContentResponse {URN}>{about}</RetrieveServiceContentResponse>"),
                        pace("program"), 0.001)
    yield from exchange("Login",
                        _request(host, f'<Login {URN}><_this type="SessionManager">ha-sessionmgr</_this>'
                                       f"<userName>{user}</userName><password>********</password></Login>", plan.agent, None),
                        _response(rng, f"<LoginResponse {URN}><returnval><key>{cookie[:36]}</key>"
                                       f"<userName>{user}</userName></returnval></LoginResponse>", cookie),
                        pace("program"), rng.uniform(0.02, 0.3))
    methods, weights = zip(*KINDS[plan.kind][2].items())
    idle_at = rng.randint(1, max(1, plan.calls - 1)) if plan.idle else -1
    version = 1
    for n in range(plan.calls):
        if n == idle_at:                                   # the session sits idle, kept alive
            waited = 0.0
            while waited + plan.keepalive < plan.idle:
                waited += plan.keepalive * rng.uniform(0.95, 1.05)
                req, resp, work = _call(rng, host, "CurrentTime", plan, cookie, version)
                yield from exchange("CurrentTime", req, resp, plan.keepalive, work)
        method = rng.choices(methods, weights=weights)[0]
        req, resp, work = _call(rng, host, method, plan, cookie, version)
        version += method == "WaitForUpdatesEx"
        yield from exchange(method, req, resp, rng.uniform(*plan.think), work)
    if plan.logout:
        yield from exchange("Logout", _request(host, f'<Logout {URN}><_this type="SessionManager">ha-sessionmgr</_this>'
                                                     "</Logout>", plan.agent, cookie),
                            _response(rng, f"<LogoutResponse {URN}></LogoutResponse>"), pace("program"), 0.001)
