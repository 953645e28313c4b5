"""vim25 SOAP requests and responses, as HTTP/1.1, for the lab's SOAP-over-902 model and 443 noise.

Why: banners advertise ``ServerDaemonProtocol:SOAP`` but no public source shows SOAP carried on
port 902 itself (protocol.md §6). The lab *models* it as HTTP/1.1 POSTs of vim25 envelopes
inside TLS #1 after a login, so the dissector meets a TLS #1 session whose record sizes look
like request/response web traffic instead of authd lines. The same messages make the HTTPS 443
background realistic (the companion port where tickets really come from, §1).
"""

from __future__ import annotations

import random

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    "<soapenv:Body>{body}</soapenv:Body>\n</soapenv:Envelope>"
)
URN = 'xmlns="urn:vim25"'


def request(host: str, body: str, version: str = "8.0.2.0", cookie: str | None = None) -> bytes:
    """An HTTP POST /sdk carrying a SOAP envelope."""
    payload = ENVELOPE.format(body=body).encode()
    headers = [
        "POST /sdk HTTP/1.1",
        f"Host: {host}",
        "User-Agent: VMware vim-java 1.0",
        "Content-Type: text/xml; charset=utf-8",
        f'SOAPAction: "urn:vim25/{version}"',
        f"Content-Length: {len(payload)}",
        "Connection: keep-alive",
    ]
    if cookie:
        headers.append(f'Cookie: vmware_soap_session="{cookie}"')
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


def response(body: str, cookie: str | None = None) -> bytes:
    """An HTTP 200 carrying a SOAP envelope."""
    payload = ENVELOPE.format(body=body).encode()
    headers = [
        "HTTP/1.1 200 OK",
        "Date: Tue, 14 May 2024 09:00:00 GMT",
        "Cache-Control: no-cache",
        "Connection: Keep-Alive",
        "Content-Type: text/xml; charset=utf-8",
        "X-Frame-Options: DENY",
        f"Content-Length: {len(payload)}",
    ]
    if cookie:
        headers.append(f'Set-Cookie: vmware_soap_session="{cookie}"; Path=/; HttpOnly; Secure;')
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


def _vm_objects(rng: random.Random, count: int) -> str:
    states = ("poweredOn", "poweredOff", "suspended")
    guests = ("Microsoft Windows Server 2019 (64-bit)", "Ubuntu Linux (64-bit)", "Red Hat Enterprise Linux 9 (64-bit)")
    return "".join(
        f'<returnval><obj type="VirtualMachine">{n}</obj>'
        f'<propSet><name>name</name><val xsi:type="xsd:string">vm-{rng.randrange(10**4):04d}</val></propSet>'
        '<propSet><name>runtime.powerState</name>'
        f'<val xsi:type="VirtualMachinePowerState">{rng.choice(states)}</val></propSet>'
        f'<propSet><name>config.guestFullName</name><val xsi:type="xsd:string">{rng.choice(guests)}</val></propSet>'
        "</returnval>"
        for n in range(1, count + 1)
    )


def session(rng: random.Random, host: str, user: str, vms: int = 40) -> list[tuple[str, bytes, bytes]]:
    """A short API session: ``(method, request, response)`` for RetrieveServiceContent, Login,
    RetrieveProperties over ``vms`` virtual machines, Logout."""
    cookie = "".join(rng.choice("0123456789abcdef") for _ in range(40))
    sc = '<_this type="ServiceInstance">ServiceInstance</_this>'
    content = ('<returnval><rootFolder type="Folder">ha-folder-root</rootFolder>'
               '<propertyCollector type="PropertyCollector">ha-property-collector</propertyCollector>'
               '<about><name>VMware ESXi</name><fullName>VMware ESXi 8.0.2 build-22380479</fullName>'
               '<apiVersion>8.0.2.0</apiVersion></about>'
               '<sessionManager type="SessionManager">ha-sessionmgr</sessionManager></returnval>')
    return [
        ("RetrieveServiceContent",
         request(host, f"<RetrieveServiceContent {URN}>{sc}</RetrieveServiceContent>"),
         response(f"<RetrieveServiceContentResponse {URN}>{content}</RetrieveServiceContentResponse>")),
        ("Login",
         request(host, f'<Login {URN}><_this type="SessionManager">ha-sessionmgr</_this>'
                       f"<userName>{user}</userName><password>********</password></Login>"),
         response(f"<LoginResponse {URN}><returnval><key>{cookie[:36]}</key><userName>{user}</userName>"
                  "</returnval></LoginResponse>", cookie=cookie)),
        ("RetrieveProperties",
         request(host, f'<RetrievePropertiesEx {URN}><_this type="PropertyCollector">ha-property-collector</_this>'
                       '<specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet>'
                       "<pathSet>runtime.powerState</pathSet><pathSet>config.guestFullName</pathSet></propSet>"
                       '<objectSet><obj type="Folder">ha-folder-root</obj><skip>false</skip></objectSet></specSet>'
                       "<options/></RetrievePropertiesEx>", cookie=cookie),
         response(f"<RetrievePropertiesExResponse {URN}><returnval>{_vm_objects(rng, vms)}</returnval>"
                  "</RetrievePropertiesExResponse>")),
        ("Logout",
         request(host, f'<Logout {URN}><_this type="SessionManager">ha-sessionmgr</_this></Logout>', cookie=cookie),
         response(f"<LogoutResponse {URN}></LogoutResponse>")),
    ]
