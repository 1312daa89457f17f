import httpx
import httpx2
from mcp.shared._httpx_utils import create_mcp_http_client

from meshgate.cookies import refuse_cookies


def test_the_brokers_kind_of_client_keeps_no_cookie_a_target_sets() -> None:
    client = httpx.AsyncClient()
    refuse_cookies(client.cookies.jar)
    request = httpx.Request("GET", "http://127.0.0.1:8941/a2a/jsonrpc")
    client.cookies.extract_cookies(httpx.Response(200, headers={"set-cookie": "session=s1; Path=/"}, request=request))
    assert list(client.cookies.jar) == []


def test_the_gateways_kind_of_client_keeps_none_either() -> None:
    client = create_mcp_http_client()
    refuse_cookies(client.cookies.jar)
    request = httpx2.Request("GET", "http://127.0.0.1:8931/mcp")
    client.cookies.extract_cookies(httpx2.Response(200, headers={"set-cookie": "session=s1"}, request=request))
    assert list(client.cookies.jar) == []
