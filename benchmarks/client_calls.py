"""Client call overhead: the connector clients against plain httpx, same replies, same run.

    .venv/bin/python benchmarks/client_calls.py [--calls 2000] [--repeat 5] [--rows 2000]

Every client call is one HTTP exchange through ``httpx.MockTransport`` (no network, so
what is timed is the client's own work: building the request, auth — Kingdee's signature,
WeCom's token —, the audit report, status and envelope classification, JSON parsing,
typed results). The baseline is the same exchange done bare: ``httpx.Client.post`` of the
same body and ``json.loads`` of the same reply. Cases:

- ``kingdee query 1 row`` / ``kingdee query <rows> rows``: ``execute_bill_query`` in signed mode;
- ``wecom user/get``: ``WeComClient.get_user`` with a cached token;
- ``dingtalk user/get``: ``DingTalkClient.get_user`` (topapi, errcode 88 unwrapping, the
  pacer asked before each call — set far above the call rate here, so it only costs its
  bookkeeping) with a cached token.

Prints calls/s per case (median of ``--repeat`` rounds) and the ratio to its baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.dingtalk.client import DingTalkClient
from connectors.kingdee.client import KingdeeClient
from connectors.wecom.client import WeComClient

KEYS = ["FID", "FBillNo", "FDate", "FCustId.FNumber", "FModifyDate"]
KINGDEE_URL = "https://erp.example.com/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"
USER = {"errcode": 0, "errmsg": "ok", "userid": "zhangsan", "name": "张三", "department": [2, 3],
        "main_department": 2, "position": "销售经理", "status": 1}


def page(rows: int) -> bytes:
    return json.dumps([[100000 + i, f"XSDD{i:06d}", "2024-05-01T00:00:00", f"CUST{i % 97:05d}",
                        "2024-05-01T10:20:30.123"] for i in range(rows)], ensure_ascii=False).encode()


def rate(call: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - started)


def kingdee_cases(rows: int) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    cases = {}
    for size in (1, rows):
        body = page(size)
        transport = httpx.MockTransport(lambda request, body=body: httpx.Response(200, content=body))
        client = KingdeeClient(base_url="https://erp.example.com/k3cloud/", acct_id="acct", username="demo",
                               app_id="123456_abcdefghijklmnopqrstuvwxyz012345", app_secret=SecretStr("0" * 32),
                               transport=transport)
        bare = httpx.Client(transport=transport)
        request_body = json.dumps({"data": {"FormId": "SAL_SaleOrder", "FieldKeys": ",".join(KEYS)}}).encode()
        cases[f"kingdee query {size} row{'s' if size > 1 else ''}"] = (
            lambda client=client, size=size: client.execute_bill_query("SAL_SaleOrder", KEYS, limit=max(size, 1)),
            lambda bare=bare, request_body=request_body: json.loads(bare.post(KINGDEE_URL, content=request_body).text),
        )
    return cases


def wecom_case() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gettoken"):
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "access_token": "tok", "expires_in": 7200})
        return httpx.Response(200, json=USER)

    transport = httpx.MockTransport(handler)
    client = WeComClient(corp_id="wwdemo", secret=SecretStr("s"), agent_id=1, transport=transport)
    bare = httpx.Client(transport=transport)
    url = "https://qyapi.weixin.qq.com/cgi-bin/user/get"
    return {"wecom user/get": (
        lambda: client.get_user("zhangsan"),
        lambda: json.loads(bare.get(url, params={"userid": "zhangsan", "access_token": "tok"}).text),
    )}


def dingtalk_case() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    reply = {"errcode": 0, "errmsg": "ok", "request_id": "r1", "result": {**USER, "unionid": "un1iE"}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/gettoken":
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "access_token": "tok", "expires_in": 7200})
        return httpx.Response(200, json=reply)

    transport = httpx.MockTransport(handler)
    client = DingTalkClient(app_key="bench", app_secret=SecretStr("s"), agent_id=1, operator_union_id="opiE",
                            transport=transport, max_qps=1_000_000)
    bare = httpx.Client(transport=transport)
    url = "https://oapi.dingtalk.com/topapi/v2/user/get"
    body = json.dumps({"userid": "zhangsan", "language": "zh_CN"}).encode()
    return {"dingtalk user/get": (
        lambda: client.get_user("zhangsan"),
        lambda: json.loads(bare.post(url, params={"access_token": "tok"}, content=body).text),
    )}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per case per round (the big page: /20)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the median is reported")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the big query page")
    args = parser.parse_args()
    cases = {**kingdee_cases(args.rows), **wecom_case(), **dingtalk_case()}
    print(f"{'case':<26}{'client calls/s':>16}{'bare httpx calls/s':>20}{'client/bare':>13}")
    for name, (client_call, bare_call) in cases.items():
        calls = max(args.calls // 20, 10) if name.endswith(f"{args.rows} rows") else args.calls
        client_call()  # warm: token, connection pool
        measured = [(rate(client_call, calls), rate(bare_call, calls)) for _ in range(args.repeat)]
        client_rate = statistics.median(m[0] for m in measured)
        bare_rate = statistics.median(m[1] for m in measured)
        print(f"{name:<26}{client_rate:>16,.0f}{bare_rate:>20,.0f}{client_rate / bare_rate:>13.2f}")


if __name__ == "__main__":
    main()
