"""Sign requests with the official Huawei Cloud Python SDK (huaweicloudsdkcore) Signer.

Protocol (used by tests/sign_differential.rs): one JSON object per stdin line
  {"method","host","path","query":[[k,v],...],"headers":{name:value},"body_hex","ak","sk"}
and one JSON line per request on stdout: {"authorization": "..."} or {"error": "..."}.
The very first stdout line is {"sdk_version": "..."}.
"""
import json
import sys
from importlib.metadata import version

from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer


class _Credentials:
    def __init__(self, ak, sk):
        self.ak = ak
        self.sk = sk


def sign(spec):
    request = SdkRequest(
        method=spec["method"],
        schema="https",
        host=spec["host"],
        resource_path=spec["path"],
        query_params=[(k, v) for k, v in spec["query"]],
        header_params=dict(spec["headers"]),
        body=bytes.fromhex(spec["body_hex"]),
    )
    signed = Signer(_Credentials(spec["ak"], spec["sk"])).sign(request)
    return signed.header_params["Authorization"]


def main():
    out = sys.stdout
    out.write(json.dumps({"sdk_version": version("huaweicloudsdkcore")}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = {"authorization": sign(json.loads(line))}
        except Exception as e:  # report, keep going: the Rust side fails the test
            reply = {"error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
