"""A failing lookup under .local is a finding like any other (issue 13): vsphere.local and
corp.local are everyday names in VMware shops, and mDNS is on 5353, not 53."""

import inspect

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.infer.diagnose import Diagnostics
from dissect.port902.lab import failures as F


@pytest.mark.parametrize("name", ["esxi-07.vsphere.local", "esxi-07.corp.local", "esxi-07.corp.example"])
def test_failing_lookup_is_reported_whatever_the_domain(tmp_path, name):
    sc = F.FailureScenario("dns_local", 5301, inspect.getdoc(F.dns_nxdomain))
    F.vsphere_client(sc, F.ADMIN, F.VCENTER, sc.at(0.0))
    F.dns_failure(sc, F.ADMIN, F.RESOLVER, name, sc.at(3.0), 3, attempts=2)
    path = tmp_path / "dns.pcap"
    sc.write(path)
    diag = analyze(path, observers=[Diagnostics()]).extras["diagnostics"]
    hits = [f for f in diag.findings if f.kind == "dns_nxdomain"]
    assert hits, [f.kind for f in diag.findings]
    assert name in hits[0].title + hits[0].detail
