"""The outbound-URL guard: what may be called, checked at send time against the resolved addresses."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from inference_core.dal.http import BlockedUrl, UrlPolicy, post, resolve_target
from inference_core.domain.webhooks import WebhookEvent, new_secret, secret_key, signature, signature_header, webhook_id

POLICY = UrlPolicy()


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the instance metadata service
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "ff02::1",
    ],
)
def test_every_internal_address_class_is_refused(address: str) -> None:
    with pytest.raises(BlockedUrl, match="blocked address"):
        resolve_target("https://hooks.example.com/x", POLICY, resolving_to(address))


def test_a_name_that_resolves_to_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(BlockedUrl):
        resolve_target("https://hooks.example.com/x", POLICY, resolving_to("93.184.216.34", "10.0.0.5"))


def test_a_public_address_is_called_at_the_address_that_was_checked() -> None:
    target = resolve_target("https://hooks.example.com/a?b=1", POLICY, resolving_to("93.184.216.34"))
    assert (target.host, target.port, target.path, target.address) == (
        "hooks.example.com",
        443,
        "/a?b=1",
        "93.184.216.34",
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/", "only https"),
        ("ftp://hooks.example.com/", "only https"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://hooks.example.com:8443/", "port 8443"),
        ("https:///nohost", "no host"),
        ("https://[::1/", "not a valid URL"),
        ("http://127.0.0.1:9000/", "only https"),  # loopback http only when the local stack allows it
    ],
)
def test_urls_that_are_never_called(url: str, reason: str) -> None:
    with pytest.raises(BlockedUrl, match=reason):
        resolve_target(url, POLICY, resolving_to("93.184.216.34"))


def test_an_allowed_port_from_the_allow_list_is_called() -> None:
    policy = UrlPolicy(allowed_ports=frozenset({443, 8443}))
    assert resolve_target("https://h.example.com:8443/", policy, resolving_to("93.184.216.34")).port == 8443


class _Receiver(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, str]]] = []
    seen: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, dict(self.headers), body))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.answers, _Receiver.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_loopback_http_is_called_only_where_the_local_stack_allows_it(receiver: str) -> None:
    with pytest.raises(BlockedUrl):
        post(receiver, b"{}", {}, UrlPolicy())
    result = post(receiver, b'{"a":1}', {"Content-Type": "application/json"}, UrlPolicy(allow_loopback_http=True))
    assert result.status_code == 200
    assert _Receiver.seen[0][2] == b'{"a":1}'


def test_a_redirect_is_a_failure_and_is_not_followed(receiver: str) -> None:
    _Receiver.answers = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"})]
    result = post(receiver, b"{}", {}, UrlPolicy(allow_loopback_http=True))
    assert result.status_code == 302
    assert len(_Receiver.seen) == 1


def test_a_closed_port_is_an_error_result_not_an_exception() -> None:
    result = post("http://127.0.0.1:9/", b"{}", {}, UrlPolicy(allow_loopback_http=True), timeout=2)
    assert result.status_code is None
    assert result.error


def test_signatures_follow_the_standard_webhooks_construction() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    # The specification's published example (standardwebhooks.com, "Verifying webhooks").
    msg_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    assert signature(secret, msg_id, timestamp, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    two = signature_header([secret, new_secret()], msg_id, timestamp, body)
    assert two.split(" ")[0] == signature(secret, msg_id, timestamp, body)
    assert len(secret_key(new_secret())) == 32


def test_the_same_event_of_the_same_object_has_one_id() -> None:
    first = webhook_id("p-1", WebhookEvent.PREDICTION_COMPLETED)
    assert first == webhook_id("p-1", WebhookEvent.PREDICTION_COMPLETED)
    assert first != webhook_id("p-1", WebhookEvent.PREDICTION_COMPLETED, sequence=1)
    assert first != webhook_id("p-2", WebhookEvent.PREDICTION_COMPLETED)
