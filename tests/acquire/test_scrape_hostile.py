"""A hostile website cannot steer the scraper (issue 26): a loopback site built to mislead it,
and a second loopback server on another address (127.0.0.2) standing in for "some other host"
(the cloud metadata service, an internal service), counting every request it receives."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import random
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fmaprep.acquire.http import FetchError, HttpClient, Target, Throttle
from fmaprep.acquire.policy import SitePolicy
from fmaprep.acquire.scrape import ScrapeConfig, ScrapeSummary, scrape
from fmaprep.acquire.watch import is_public_address

from .conftest import FakeFMA, FakeTrack, quick_config

OTHER_HOST = "127.0.0.2"


def stored(dest: Path) -> dict[str, str]:
    return {
        p.relative_to(dest).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in dest.rglob("*.mp3")
    }


def track_lines(dest: Path) -> dict[str, dict[str, Any]]:
    text = (dest / "_tracks.jsonl").read_text(encoding="utf-8")
    latest = {}
    for raw in text.split("\n"):
        if raw:
            line = json.loads(raw)
            latest[line["id"]] = line
    return latest


@pytest.fixture
def other(serve: Any, tones: list[bytes]) -> FakeFMA:
    """Another host, with an answer ready for anything the scraper might be sent to get."""
    return serve(FakeFMA([FakeTrack(i, tones[8 + i]) for i in range(1, 4)], page_size=10),
                 OTHER_HOST)  # fmt: skip


@pytest.fixture
def ambient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other: FakeFMA) -> None:
    """What a user's environment may hold: a ~/.netrc with a password for both hosts, and
    proxy variables pointing at the other host."""
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(
        "machine 127.0.0.1 login user password netrc-secret\n"
        f"machine {OTHER_HOST} login user password netrc-secret\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, other.base_url)


def differential(other: FakeFMA, site: FakeFMA, path: str) -> str:
    """A URL that urllib.parse reads as the site and requests/urllib3 as the other host."""
    return f"{other.base_url}\\@{site.base_url.removeprefix('http://')}{path}"


@pytest.mark.parametrize("where", ["file_url", "redirect", "next_page"])
@pytest.mark.usefixtures("ambient")
def test_parser_differential_reaches_no_other_host(
    serve: Any, tones: list[bytes], tmp_path: Path, other: FakeFMA, where: str
) -> None:
    site = FakeFMA([FakeTrack(1, tones[0]), FakeTrack(2, tones[1])], page_size=10)
    serve(site)
    if where == "file_url":
        site.tracks[1].file_url = differential(other, site, "/files/2.mp3")
    elif where == "redirect":
        site.tracks[1].file_url = "/hop/2.mp3"
        site.redirects["/hop/2.mp3"] = differential(other, site, "/files/2.mp3")
    else:
        site.next_url = differential(other, site, "/genre/Test/?page=2")
    dest = tmp_path / "dest"
    summary = scrape(quick_config(site, dest))

    assert other.hits == []  # not a single request reached the other host
    assert all(h.authorization is None for h in site.hits)  # no .netrc password sent
    good = {"000/000001.mp3": site.tracks[0].sha1}
    if where == "next_page":  # the crawl does not move: the listing just ends there
        good["000/000002.mp3"] = site.tracks[1].sha1
        assert "bad_url" in (summary.listing_error or "")
    else:
        assert "bad_url" in track_lines(dest)["000002"]["error"]
    assert stored(dest) == good  # nothing stored from the other host
    # every stored URL is one that was fetched, on the site
    for line in track_lines(dest).values():
        if line["status"] == "ok":
            assert line["urls"]["final"].startswith(site.base_url + "/files/")


@pytest.mark.usefixtures("ambient")
def test_other_port_other_name_and_foreign_redirects_are_refused(
    serve: Any, tones: list[bytes], tmp_path: Path, other: FakeFMA
) -> None:
    same_host_other_port = serve(FakeFMA([FakeTrack(3, tones[2])], page_size=10))
    site = FakeFMA(
        [
            FakeTrack(1, tones[0]),
            FakeTrack(2, tones[1], file_url=f"{same_host_other_port.base_url}/files/3.mp3"),
            FakeTrack(3, tones[2], file_url="/hop/3.mp3"),
            FakeTrack(4, tones[3], file_url=f"{other.base_url}/files/1.mp3"),
            FakeTrack(5, tones[4], file_url="/hop/5.mp3"),
            FakeTrack(6, tones[5], file_url="http://user:pw@" + "127.0.0.1/files/6.mp3"),
        ],
        page_size=10,
        redirects={
            "/hop/3.mp3": f"{same_host_other_port.base_url}/files/3.mp3",
            "/hop/5.mp3": f"{other.base_url}/files/1.mp3",
        },
    )
    serve(site)
    site.tracks[5].file_url = site.base_url.replace("//", "//user:pw@") + "/files/6.mp3"
    dest = tmp_path / "dest"
    summary = scrape(quick_config(site, dest))
    assert other.hits == [] and same_host_other_port.hits == []
    assert stored(dest) == {"000/000001.mp3": site.tracks[0].sha1}
    errors = dict(summary.failures)
    assert all("host_not_allowed" in errors[f"00000{i}"] for i in (2, 3, 4, 5)), errors
    assert "bad_url" in errors["000006"] and site.count("/files/6.mp3") == 0
    assert all(h.authorization is None for h in site.hits)


def test_base_url_credentials_go_to_its_origin_only(
    serve: Any, tones: list[bytes], tmp_path: Path, other: FakeFMA
) -> None:
    site = FakeFMA(
        [FakeTrack(1, tones[0]), FakeTrack(2, tones[1], file_url=f"{other.base_url}/files/2.mp3")],
        page_size=10,
    )
    serve(site)
    other.robots = "User-agent: *\nAllow: /\n"
    base = site.base_url.replace("//", "//alice:s3cret@")
    allow = other.base_url.removeprefix("http://")
    summary = scrape(quick_config(site, tmp_path, base_url=base, allow_hosts=(allow,)))
    assert summary.downloaded == 2, summary.text()
    assert {h.authorization for h in site.hits} == {"Basic YWxpY2U6czNjcmV0"}  # alice:s3cret
    assert other.hits and all(h.authorization is None for h in other.hits)
    assert "s3cret" not in summary.text()
    assert "s3cret" not in (tmp_path / "_tracks.jsonl").read_text()


def test_policy_refuses_downgrades_other_ports_and_names() -> None:
    policy = SitePolicy("https://freemusicarchive.org", allow_hosts=("cdn.example:8443",))

    def target(url: str) -> Target:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}[parts.scheme]
        return Target(url, parts.scheme, parts.hostname or "", port, False)

    allowed = [
        "https://freemusicarchive.org/a",
        "https://files.freemusicarchive.org/b.mp3",
        "https://cdn.example:8443/c.mp3",
    ]
    refused = [
        "http://freemusicarchive.org/a",  # a downgrade
        "https://freemusicarchive.org:8443/a",  # another port
        "https://freemusicarchive.org.evil.example/a",
        "https://cdn.example/c.mp3",  # the allowed host, on another port
        "http://cdn.example:8443/c.mp3",
    ]
    assert [policy.refusal(target(u)) for u in allowed] == [None] * 3
    assert all(policy.refusal(target(u)) for u in refused)
    upgrade = SitePolicy("http://fma.example")
    assert upgrade.refusal(target("https://fma.example/x")) is None
    assert upgrade.refusal(target("https://fma.example:8080/x"))
    assert not policy.allow_private  # a public base URL: no private addresses


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("169.254.169.254", False),  # the cloud metadata service
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("172.16.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:169.254.169.254", False),
        ("224.0.0.1", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_a_connection_to_a_forbidden_address_sends_nothing(serve: Any, tones: list[bytes]) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0])]))
    http = HttpClient(Throttle(0.0, 10, 0.0), retries=3, rng=random.Random(0))
    http.address_ok = is_public_address  # (the name resolves: the socket's peer is checked)
    for url in (f"{site.base_url}/files/1.mp3", site.base_url.replace("127.0.0.1", "localhost")):
        with pytest.raises(FetchError) as err:
            http.get_page(url)
        assert err.value.reason == "address_not_allowed"
    assert site.hits == []


def timed(cfg: ScrapeConfig) -> tuple[ScrapeSummary, float]:
    started = time.monotonic()
    summary = scrape(cfg)
    return summary, time.monotonic() - started


@pytest.mark.parametrize("slow", ["/robots.txt", "/genre/Test/", "/files/2.mp3"])
def test_a_byte_a_fifth_of_a_second_cannot_stall_a_request(
    serve: Any, tones: list[bytes], tmp_path: Path, slow: str
) -> None:
    site = FakeFMA([FakeTrack(1, tones[0]), FakeTrack(2, tones[1])], page_size=10, trickle={slow})
    serve(site)
    # the 60-byte body would take 60 s; a read timeout of 5 s is never tripped by it
    summary, seconds = timed(quick_config(site, tmp_path, deadline=1.5, timeout=5, retries=3))
    assert seconds < 12, summary.text()
    assert site.count(slow) == 1  # a request over its deadline is not retried
    if slow == "/robots.txt":  # unreachable robots.txt: nothing else is fetched
        assert summary.downloaded == 0 and "robots_disallowed" in (summary.listing_error or "")
        assert [h.path for h in site.hits] == ["/robots.txt"]
    elif slow == "/genre/Test/":
        assert summary.downloaded == 0 and "deadline" in (summary.listing_error or "")
    else:
        assert summary.downloaded == 1 and "deadline" in dict(summary.failures)["000002"]
        assert stored(tmp_path) == {"000/000001.mp3": site.tracks[0].sha1}


def test_ten_thousand_bad_candidates_end_at_the_failure_budgets(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    site = serve(FakeFMA([FakeTrack(i, tones[0], "gone") for i in range(1, 10_001)],
                         page_size=200))  # fmt: skip
    # the default: 20 failures in a row stop the run
    summary, seconds = timed(quick_config(site, tmp_path / "a", page_size=200, limit=20))
    assert seconds < 30
    assert summary.failed == 20 and "--max-consecutive-failures" in (summary.listing_error or "")
    assert len(site.audio_hits()) == 20
    assert not summary.complete
    # a total cap, and a page cap
    summary = scrape(quick_config(site, tmp_path / "b", page_size=200, limit=20, max_failures=50,
                            max_consecutive_failures=10_000))  # fmt: skip
    assert summary.failed == 50 and "--max-failures" in (summary.listing_error or "")
    before, site.page_size = len(site.hits), 5
    summary = scrape(quick_config(site, tmp_path / "c", page_size=5, limit=20, max_pages=3,
                            max_consecutive_failures=10_000))  # fmt: skip
    assert summary.pages == 3 and "--max-pages" in (summary.listing_error or "")
    assert summary.failed == 15 and len(site.hits) - before == 1 + 3 + 15  # robots, pages, files
    lines = (tmp_path / "c" / "_tracks.jsonl").read_text().split("\n")
    assert len([x for x in lines if x]) == 15


def test_huge_crawl_delay_is_capped(serve: Any, tones: list[bytes], tmp_path: Path) -> None:
    site = FakeFMA([FakeTrack(i, tones[i]) for i in range(1, 4)], page_size=10,
                   robots="User-agent: *\nCrawl-delay: 999999\n")  # fmt: skip
    serve(site)
    summary, seconds = timed(quick_config(site, tmp_path, max_crawl_delay=0.3, concurrency=1))
    assert summary.downloaded == 3 and seconds < 20
    starts = sorted(h.at for h in site.hits)  # robots.txt, the listing, three files
    assert len(starts) == 5 and starts[-1] - starts[1] >= 0.6  # 3 capped delays (0.9 s), jittered


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


NESTED_TITLE = '{"id": 3, "fileUrl": "/files/3.mp3", "title": ' + deep(200) + "}"


def test_hostile_json_headers_and_bodies_are_one_line_each(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    rng = random.Random(26)
    noise = rng.randbytes(40_000)
    real = tones[6]
    site = FakeFMA(
        [
            FakeTrack(1, tones[0]),
            FakeTrack(2, tones[1], raw_info='{"id": 2, "title": ' + deep(100_000) + "}"),
            FakeTrack(3, tones[2], raw_info=NESTED_TITLE),
            FakeTrack(4, tones[3], file_url="/odd/4.mp3"),  # 429 with Retry-After: ²
            FakeTrack(5, tones[4], file_url="/fake/5.mp3"),  # ID3, then HTML
            FakeTrack(6, tones[5], file_url="/fake/6.mp3"),  # a frame sync, then noise
            FakeTrack(7, real, "short_length"),  # Content-Length: half the mp3
            FakeTrack(8, real, "long_length"),  # Content-Length: more than is sent
            FakeTrack(9, real[: len(real) * 2 // 3]),  # an mp3 cut mid-frame
            FakeTrack(10, tones[9], file_url="/odd/10.mp3"),  # Content-Length: ²
        ],
        page_size=20,
        pages={
            "/odd/4.mp3": (429, b"slow down", "text/html", {"Retry-After": "\u00b2"}),
            "/fake/5.mp3": (200, b"ID3\x04\x00\x00<html><body>" + b"x" * 5000, "audio/mpeg", {}),
            "/fake/6.mp3": (200, b"\xff\xfb\x90\x64" + noise, "audio/mpeg", {}),
            "/odd/10.mp3": (200, tones[9], "audio/mpeg", {"X-Note": "\u00b2"}),
        },
    )
    serve(site)
    summary = scrape(quick_config(site, tmp_path))
    errors = dict(summary.failures)
    assert summary.downloaded == 3, summary.text()  # 1, 3 (title dropped) and 10
    assert set(stored(tmp_path)) == {"000/000001.mp3", "000/000003.mp3", "000/000010.mp3"}
    assert summary.rejected == 1 and "nested too deeply" in summary.text()
    assert "retries_exhausted" in errors["000004"] and site.count("/odd/4.mp3") == 2
    assert "not_audio" in errors["000005"] and "not_audio" in errors["000006"]
    assert "truncated" in errors["000007"]
    assert "retries_exhausted" in errors["000008"] and "cut short" in errors["000008"]
    assert "truncated" in errors["000009"]
    assert track_lines(tmp_path)["000003"]["title"] is None


def test_line_separator_titles_round_trip(serve: Any, tones: list[bytes], tmp_path: Path) -> None:
    titles = ["a\u2028b", "c\u2029d", "e\x85f", "g\rh\x0bi\x1cj"]
    site = FakeFMA([FakeTrack(i + 1, tones[i], title=t) for i, t in enumerate(titles)],
                   page_size=10)  # fmt: skip
    serve(site)
    assert scrape(quick_config(site, tmp_path)).downloaded == 4
    text = (tmp_path / "_tracks.jsonl").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 4  # even a reader splitting at U+2028 sees 4 lines
    assert [track_lines(tmp_path)[f"00000{i + 1}"]["title"] for i in range(4)] == titles
    again = scrape(quick_config(site, tmp_path))
    assert (again.downloaded, again.skipped) == (0, 4)
    assert len(site.audio_hits()) == 4


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the certificate a client must trust for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


@pytest.mark.usefixtures("ambient")
def test_https_site_never_downgrades_to_http(
    serve: Any, tones: list[bytes], tmp_path: Path, other: FakeFMA
) -> None:
    context, cert = _self_signed(tmp_path)
    plain = f"{other.base_url}/files/1.mp3"  # http, on a host:port --allow-host names
    site = FakeFMA(
        [
            FakeTrack(1, tones[0]),
            FakeTrack(2, tones[1], file_url=plain),
            FakeTrack(3, tones[2], file_url="/hop/3.mp3"),
        ],
        page_size=10,
        redirects={"/hop/3.mp3": plain},
    )
    serve(site, tls=context)
    session = requests.Session()
    session.verify = str(cert)  # (the one certificate this test trusts)
    cfg = quick_config(site, tmp_path / "dest", allow_hosts=(other.base_url[len("http://") :],))
    client = HttpClient(Throttle(0.0, 50, 0.0), retries=2, backoff=0.01, timeout=10, deadline=10,
                        transport=session, ambient=False)  # fmt: skip
    summary = scrape(cfg, client=client)
    assert other.hits == []
    assert summary.downloaded == 1, summary.text()
    errors = dict(summary.failures)
    assert "downgrade" in errors["000002"] and "downgrade" in errors["000003"]
    assert stored(tmp_path / "dest") == {"000/000001.mp3": site.tracks[0].sha1}
    assert all(h.authorization is None for h in site.hits)


def test_the_listing_stopped_line_is_redacted(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    site = FakeFMA([FakeTrack(1, tones[0])], page_size=10, next_url="/gone?token=SECRET1")
    serve(site)
    summary = scrape(quick_config(site, tmp_path, limit=5))
    assert "http_404" in (summary.listing_error or "")
    assert "listing stopped: http_404" in summary.text() and "SECRET1" not in summary.text()
