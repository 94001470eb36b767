"""The loopback DNS server used by the tests and the outage drill."""

from __future__ import annotations

import time

import dns.message
import dns.query
import dns.rcode
import pytest

from resilient_aws.testing.dns_server import LoopbackDnsServer

pytestmark = pytest.mark.integration


def ask(server: LoopbackDnsServer, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 1.0):
    q = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, "127.0.0.1", port=server.port, timeout=timeout)


def test_it_answers_over_udp_and_tcp_and_counts(dns_server):
    dns_server.set("a.test", a=["127.0.0.5"], ttl=3)
    for tcp in (False, True):
        r = ask(dns_server, "a.test", tcp=tcp)
        assert [rd.address for rd in r.answer[0]] == ["127.0.0.5"]
        assert r.answer[0].ttl == 3
    assert dns_server.count("a.test") == 2
    assert dns_server.count("a.test", "A") == 2
    assert dns_server.count() == 2


@pytest.mark.parametrize(("mode", "rcode"), [("empty", dns.rcode.NOERROR), ("nxdomain", dns.rcode.NXDOMAIN),
                                             ("servfail", dns.rcode.SERVFAIL)])
def test_modes_answer_with_their_rcode_and_restore_brings_records_back(dns_server, mode, rcode):
    dns_server.set("a.test", a=["127.0.0.5"])
    dns_server.set_mode("a.test", mode)
    r = ask(dns_server, "a.test")
    assert r.rcode() == rcode and not r.answer
    dns_server.restore("a.test")
    assert ask(dns_server, "a.test").answer


def test_drop_mode_does_not_answer(dns_server):
    dns_server.set("a.test", a=["127.0.0.5"])
    dns_server.set_mode("a.test", "drop")
    with pytest.raises(dns.exception.Timeout):
        ask(dns_server, "a.test", timeout=0.2)


def test_unknown_names_are_nxdomain(dns_server):
    assert ask(dns_server, "unknown.test").rcode() == dns.rcode.NXDOMAIN


def test_it_refuses_to_listen_off_loopback():
    with pytest.raises(ValueError):
        LoopbackDnsServer(host="0.0.0.0")


def test_stop_is_bounded():
    server = LoopbackDnsServer().start()
    t = time.monotonic()
    server.stop()
    assert time.monotonic() - t < 2.0
