"""Hostile servers through the real CLI: trickle, hang, inflate, loop, TLS, DNS, redirects into internal addresses.

One `once` run polls every hostile server next to a good source (module
fixture); each slow case has its own server, so the per-host limit of two
requests at a time does not serialise them. 127.0.0.2 plays a public host:
AGGREGATOR_PUBLIC_NETWORKS declares it public, while 127.0.0.1 stays the
internal service a redirect must not reach.
"""

from __future__ import annotations

import ssl
import threading

import pytest
import trustme

from conftest import status_json, write_config
from feedserver import FeedServer
from hostile import ATOM, hang, inflating, output_entries, redirect, rss, rss_item, run_cli_measured, trickle

FEED = rss(rss_item("Fetched through hostile servers", "https://transport.example/1"))
INTERNAL = rss(rss_item("INTERNAL SERVICE RESPONSE", "https://intranet.example/secret"))
SLOW = {"timeout": "1.5s"}


@pytest.fixture(scope="module")
def transport_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile-transport")
    stop = threading.Event()
    ca = trustme.CA()  # never trusted by the aggregator: its certificate fails verification
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls_context)
    servers = {name: FeedServer() for name in ("main", "trickle-body", "trickle-sized", "trickle-headers", "hang",
                                               "bomb")}
    servers["public"] = FeedServer(host="127.0.0.2")
    servers["tls"] = FeedServer(ssl_context=tls_context)
    for server in servers.values():
        server.start()
    main, public = servers["main"], servers["public"]
    try:
        main.serve("/internal", INTERNAL)
        main.serve("/feed.xml", FEED)
        main.serve("/page.html", "<!DOCTYPE html><html><body><p>Not a feed</p></body></html>", content_type="text/html")
        main.routes["/loop-a"] = _redirect_route(main.url("/loop-b"))
        main.routes["/loop-b"] = _redirect_route(main.url("/loop-a"))
        for length, prefix in ((6, "/six"), (5, "/five")):
            for hop in range(length):
                target = main.url(f"{prefix}{hop + 1}") if hop + 1 < length else main.url("/feed.xml")
                main.routes[f"{prefix}{hop}"] = _redirect_route(target)
        main.routes["/to-file"] = _redirect_route("file:///etc/passwd")
        main.routes["/to-bad-port"] = _redirect_route("http://127.0.0.1:99999/feed.xml", 301)
        main.routes["/to-bad-url"] = _redirect_route("http://[bad/feed.xml")
        main.routes["/internal-hop"] = _redirect_route(main.url("/feed.xml"))
        internal_port = main.httpd.server_address[1]
        ssrf_targets = {
            "to-loopback": main.url("/internal"),
            "to-localhost": f"http://localhost:{internal_port}/internal",
            "to-decimal-ip": f"http://2130706433:{internal_port}/internal",
            "to-ipv6-loopback": f"http://[::1]:{internal_port}/internal",
            "to-metadata": "http://169.254.169.254/latest/meta-data/",
        }
        for name, target in ssrf_targets.items():
            public.routes[f"/{name}"] = _redirect_route(target)
        public.routes["/public-hop"] = _redirect_route(public.url("/public-feed"))
        public.serve("/public-feed", FEED)
        servers["trickle-body"].routes["/feed.xml"] = _route(trickle("body", 0.2, stop))
        servers["trickle-sized"].routes["/feed.xml"] = _route(trickle("sized", 0.2, stop))
        servers["trickle-headers"].routes["/feed.xml"] = _route(trickle("headers", 0.2, stop))
        servers["hang"].routes["/feed.xml"] = _route(hang(stop))
        bomb = inflating(64 * 1024 * 1024)
        servers["bomb"].routes["/feed.xml"] = _route(bomb)
        servers["tls"].serve("/feed.xml", FEED)
        sources = [
            {"id": "good", "url": main.url("/feed.xml")},
            {"id": "trickle-body", "url": servers["trickle-body"].url("/feed.xml"), **SLOW},
            {"id": "trickle-sized", "url": servers["trickle-sized"].url("/feed.xml"), **SLOW},
            {"id": "trickle-headers", "url": servers["trickle-headers"].url("/feed.xml"), **SLOW},
            {"id": "hang", "url": servers["hang"].url("/feed.xml"), **SLOW},
            {"id": "gzip-bomb", "url": servers["bomb"].url("/feed.xml"), "max_bytes": "1MB"},
            {"id": "redirect-loop", "url": main.url("/loop-a")},
            {"id": "redirect-chain-6", "url": main.url("/six0")},
            {"id": "redirect-chain-5", "url": main.url("/five0")},
            {"id": "redirect-to-file", "url": main.url("/to-file")},
            {"id": "html-page", "url": main.url("/page.html")},
            {"id": "redirect-to-bad-port", "url": main.url("/to-bad-port")},
            {"id": "redirect-to-bad-url", "url": main.url("/to-bad-url")},
            {"id": "tls", "url": servers["tls"].url("/feed.xml")},
            {"id": "dns", "url": "http://no-such-host.invalid/feed.xml"},
            {"id": "internal-to-internal", "url": main.url("/internal-hop")},
            {"id": "public-to-public", "url": public.url("/public-hop")},
            *({"id": name, "url": public.url(f"/{name}"), **SLOW} for name in ssrf_targets),
        ]
        config = write_config(directory, [{"tags": ["t"], **s} for s in sources])
        result = run_cli_measured("once", config=config, env={"AGGREGATOR_PUBLIC_NETWORKS": "127.0.0.2/32"})
        yield {"result": result, "status": status_json(config), "main": main, "directory": directory,
               "bomb_size": bomb.payload_size}
    finally:
        stop.set()
        for server in servers.values():
            server.stop()


def _route(handler):
    from feedserver import Route

    return Route(handler=handler)


def _redirect_route(location: str, status: int = 302):
    return _route(redirect(location, status))


def _failing(status: dict, source_id: str, *phrases: str) -> str:
    row = status[source_id]
    assert row["state"] == "failing", row
    error = row["last_error"]
    assert "\n" not in error and all(p in error for p in phrases), error
    return error


def test_hostile_servers_do_not_stop_the_good_source_or_publishing(transport_run):
    result = transport_run["result"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert transport_run["status"]["good"]["state"] == "ok"
    titles = [e.findtext(f"{ATOM}title") for e in output_entries(transport_run["directory"] / "out" / "all.atom")]
    assert "Fetched through hostile servers" in titles
    assert "INTERNAL SERVICE RESPONSE" not in titles


@pytest.mark.parametrize("source_id", ["trickle-body", "trickle-sized", "trickle-headers", "hang"])
def test_the_deadline_bounds_the_whole_request(transport_run, source_id):
    _failing(transport_run["status"], source_id, "timed out after 1.5s")
    # the last HTTP status is the answer's, when one came before the body failed (trickled headers: either)
    expected = {"trickle-body": {200}, "trickle-sized": {200}, "hang": {None}}.get(source_id, {200, None})
    assert transport_run["status"][source_id]["last_status"] in expected, transport_run["status"][source_id]


def test_a_gzip_bomb_is_cut_off_on_its_decoded_size(transport_run):
    assert transport_run["bomb_size"] < 1024 * 1024  # under max_bytes on the wire
    _failing(transport_run["status"], "gzip-bomb", "max_bytes")
    assert transport_run["status"]["gzip-bomb"]["last_status"] == 200
    assert transport_run["result"].max_rss_mb < 300


def test_an_html_page_is_a_parse_error_after_a_200(transport_run):
    _failing(transport_run["status"], "html-page", "parse:", "an HTML page")
    assert transport_run["status"]["html-page"]["last_status"] == 200


@pytest.mark.parametrize("source_id", ["redirect-loop", "redirect-chain-6"])
def test_redirect_loops_and_long_chains_are_cut_off(transport_run, source_id):
    _failing(transport_run["status"], source_id, "more than 5 redirects")


def test_five_redirects_are_followed(transport_run):
    assert transport_run["status"]["redirect-chain-5"]["state"] == "ok"


def test_a_redirect_to_a_file_url_is_not_followed(transport_run):
    _failing(transport_run["status"], "redirect-to-file", "file")


def test_a_redirect_to_a_port_out_of_range_is_a_fetch_error(transport_run):
    error = _failing(transport_run["status"], "redirect-to-bad-port", "fetch:", "99999")
    assert "internal error" not in error and transport_run["status"]["redirect-to-bad-port"]["url"].endswith(
        "/to-bad-port"), error  # not adopted


def test_a_redirect_to_an_unreadable_url_is_a_fetch_error(transport_run):
    error = _failing(transport_run["status"], "redirect-to-bad-url", "fetch: redirected to an unreadable URL")
    assert "internal error" not in error, error


def test_tls_errors_are_recorded(transport_run):
    _failing(transport_run["status"], "tls", "TLS error", "certificate")


def test_dns_errors_are_recorded(transport_run):
    _failing(transport_run["status"], "dns", "no-such-host.invalid")


@pytest.mark.parametrize("source_id", ["to-loopback", "to-localhost", "to-decimal-ip", "to-ipv6-loopback",
                                       "to-metadata"])
def test_a_public_source_cannot_redirect_into_internal_addresses(transport_run, source_id):
    _failing(transport_run["status"], source_id, "refused", "internal address")
    assert transport_run["main"].seen("/internal") == []


@pytest.mark.parametrize("source_id", ["internal-to-internal", "public-to-public"])
def test_redirects_that_stay_on_their_side_are_followed(transport_run, source_id):
    assert transport_run["status"][source_id]["state"] == "ok", transport_run["status"][source_id]


@pytest.mark.parametrize("address,internal", [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True), ("100.64.0.1", True),
    ("169.254.169.254", True), ("0.0.0.0", True), ("224.0.0.1", True), ("::1", True), ("fe80::1%eth0", True),
    ("fd00:ec2::254", True), ("::ffff:127.0.0.1", True), ("2002:7f00:1::", True), ("64:ff9b::a9fe:a9fe", True),
    ("8.8.8.8", False), ("2606:4700::1111", False), ("64:ff9b::808:808", False), ("not-an-address", True),
])
def test_which_addresses_count_as_internal(address, internal):
    from aggregator.reader.transport import AddressPolicy

    assert AddressPolicy().is_internal(address) is internal


def test_networks_can_be_declared_public(monkeypatch):
    from aggregator.reader.transport import AddressPolicy

    monkeypatch.setenv("AGGREGATOR_PUBLIC_NETWORKS", "127.0.0.2/32, 10.9.0.0/16 not-a-network")
    policy = AddressPolicy.from_environment()
    assert not policy.is_internal("127.0.0.2") and not policy.is_internal("10.9.8.7")
    assert policy.is_internal("127.0.0.1") and policy.is_internal("10.8.0.1")
