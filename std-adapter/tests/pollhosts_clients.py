#!/usr/bin/python3
"""PollHosts as its two real clients call it, with the Python standard library only.

(a) OpenStack Nova's TrustedFilter (nova/scheduler/filters/trusted_filter.py): POST
    /OpenAttestationWebServices/V1.0/PollHosts with {"count": N, "hosts": [...]}, headers
    Content-type/Accept application/json and x-auth-blob, HTTPS verified against a CA file; a
    host passes when host['trust_lvl'] == 'trusted'; vtime is an ISO 8601 UTC time.
(b) oVirt's AttestationService: POST /AttestationService/resources/PollHosts with
    {"hosts":[...]} built by string concatenation (so no hosts gives {"hosts":]}), no
    authentication, only status 200 accepted, trust_lvl compared case-insensitively to TRUSTED.

Also: a wrong x-auth-blob is refused with 401, malformed JSON answers 200 {"hosts": []}, a body
over 1 MiB is refused with 413.

Usage: pollhosts_clients.py PORT CAFILE AUTH_BLOB HOST=LEVEL...
Prints one line per check ("ok ..." or "FAIL ...") and exits 0 only if every check passed.
"""

import datetime
import http.client
import json
import ssl
import sys

NOVA_PATH = "/OpenAttestationWebServices/V1.0/PollHosts"
OVIRT_PATH = "/AttestationService/resources/PollHosts"

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def connect(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    # The default context verifies the chain and the host name: connect by name.
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)


def post(port, cafile, path, body, headers):
    conn = connect(port, cafile)
    try:
        conn.request("POST", path, body=body, headers=headers)
        res = conn.getresponse()
        data = res.read()
        return res.status, data
    finally:
        conn.close()


def nova(port, cafile, blob, hosts):
    """Nova's AttestationService._request("POST", "PollHosts", hosts)."""
    headers = {"Content-type": "application/json", "Accept": "application/json"}
    if blob:
        headers["x-auth-blob"] = blob
    data = {"count": len(hosts), "hosts": hosts}
    status, body = post(port, cafile, NOVA_PATH, json.dumps(data), headers)
    if status != 200:
        return status, None
    return status, json.loads(body).get("hosts")


def ovirt_body(hosts):
    """oVirt's AttestationService.writeListJson: concatenation, last character deleted."""
    sb = '{"hosts":['
    for h in hosts:
        sb += '"' + h + '",'
    sb = sb[:-1]
    return sb + "]}"


def ovirt(port, cafile, hosts):
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    status, body = post(port, cafile, OVIRT_PATH, ovirt_body(hosts), headers)
    if status != 200:
        # oVirt logs the status and treats every host as untrusted.
        return status, None
    return status, json.loads(body)["hosts"]


def main():
    port = int(sys.argv[1])
    cafile = sys.argv[2]
    blob = sys.argv[3]
    expected = dict(a.split("=", 1) for a in sys.argv[4:])
    names = list(expected)

    # (a) Nova.
    status, result = nova(port, cafile, blob, names)
    check(status == 200, f"nova status {status}")
    result = result or []
    check([h["host_name"] for h in result] == names, "nova answers every host, in order")
    for state in result:
        name = state["host_name"]
        passes = state["trust_lvl"] == "trusted"
        want = expected[name] == "trusted"
        check(passes == want, f"nova {name} trust_lvl={state['trust_lvl']} passes={passes}")
        vtime = datetime.datetime.fromisoformat(state["vtime"].replace("Z", "+00:00"))
        check(vtime.tzinfo is not None and state["vtime"].endswith("Z"),
              f"nova {name} vtime {state['vtime']}")

    # (a') Nova with a wrong blob, and with none.
    status, _ = nova(port, cafile, "not-the-blob", names)
    check(status == 401, f"nova wrong x-auth-blob -> {status}")
    status, _ = nova(port, cafile, None, names)
    check(status == 401, f"nova without x-auth-blob -> {status}")

    # (b) oVirt.
    status, result = ovirt(port, cafile, names)
    check(status == 200, f"ovirt status {status}")
    result = result or []
    check([h["host_name"] for h in result] == names, "ovirt answers every host, in order")
    for state in result:
        name = state["host_name"]
        trusted = state["trust_lvl"].upper() == "TRUSTED"
        check(trusted == (expected[name] == "trusted"),
              f"ovirt {name} trust_lvl={state['trust_lvl']} trusted={trusted}")
        check(state["trust_lvl"] == expected[name], f"ovirt {name} level {expected[name]}")

    # (b') oVirt's empty list, as it sends it.
    body = ovirt_body([])
    check(body == '{"hosts":]}', f"ovirt empty body is {body}")
    status, result = ovirt(port, cafile, [])
    check(status == 200 and result == [], f"ovirt empty list -> {status} {result}")

    # Malformed JSON: 200 and no hosts.
    headers = {"Content-type": "application/json", "x-auth-blob": blob}
    status, data = post(port, cafile, NOVA_PATH, '{"count": 1, "hosts": ["a"', headers)
    check(status == 200 and json.loads(data) == {"hosts": []},
          f"malformed JSON -> {status} {data!r}")

    # Over 1 MiB: 413 (the server may close before the whole body is sent).
    big = '{"count": 1, "hosts": ["' + "x" * (1 << 20) + '"]}'
    try:
        status, data = post(port, cafile, NOVA_PATH, big, headers)
        check(status == 413, f"oversized body -> {status}")
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
        check(False, f"oversized body: connection failed without an answer: {e!r}")

    # Still serving.
    status, result = nova(port, cafile, blob, names)
    check(status == 200 and [h["trust_lvl"] for h in result] == [expected[n] for n in names],
          f"nova again after the bad requests -> {status}")

    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        sys.exit(1)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
