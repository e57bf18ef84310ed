"""What each lifecycle script costs Redis per call, in instructions: creates, claims, accepts and
completes N tickets against a redis-server running under callgrind, with the instruction counters dumped
between the phases (callgrind_control), so each figure is one script's alone.

Run by benches/script_cost.sh; speaks RESP over a socket (no client library needed), and loads
each script as the server does (`callrouter script NAME`).
Usage: python3 lifecycle_cost.py CALLROUTER_BINARY PORT VALGRIND_PID N
"""

import socket
import subprocess
import sys

P = "callrouter:{touraine-logement}:"
TEAM = "touraine-logement.technical.tl-tours"
DETAILS = (
    '{"rule_id":"technical","reasons":["address matched building TL-00012 (confidence 1.00)",'
    '"issue technical.plumbing.leak (Fuite d eau): default urgency U2","touraine-logement is open",'
    '"rule technical: the sector technical team"],"address_match":{"building_id":"TL-00012"}}'
)


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def load(r, binary, name):
    text = subprocess.run([binary, "script", name], check=True, capture_output=True).stdout
    return r.call("SCRIPT", "LOAD", text)


def dump(pid, phase):
    subprocess.run(["callgrind_control", "-d", phase, str(pid)], check=True, capture_output=True)


def main():
    binary = sys.argv[1]
    port, pid, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    r = Redis(port)
    create, claim, accept, complete = (
        load(r, binary, s) for s in ("create", "claim", "accept", "complete")
    )
    common = [P, 1000, 2592000000]
    dump(pid, "start")
    for i in range(n):
        r.call("EVALSHA", create, 4, P + "call:c-%d" % i, P + "q:" + TEAM, P + "t:tl-%d" % i,
               P + "call:c-%d" % i, *common, "tl-%d" % i, "c-%d" % i, "touraine-logement",
               "touraine-logement", TEAM, 2, "technical.plumbing.leak", "TL-00012", "",
               1795780124779, "touraine-logement.supervisor", DETAILS, 99999999999999,
               "12 rue Nationale 37000 Tours")
    dump(pid, "create")
    held = []
    for i in range(n):
        fields = r.call("EVALSHA", claim, 1, P + "q:" + TEAM, *common, "agent-1", 600000,
                        "claim-%d" % i)
        ticket = dict(zip(fields[::2], fields[1::2]))
        held.append((ticket["ticket_id"], ticket["lease_token"]))
    dump(pid, "claim")
    for ticket_id, token in held:
        r.call("EVALSHA", accept, 1, P + "t:" + ticket_id, *common, ticket_id, "agent-1", token,
               600000)
    dump(pid, "accept")
    for ticket_id, token in held:
        r.call("EVALSHA", complete, 1, P + "t:" + ticket_id, *common, ticket_id, "agent-1",
               token, "fixed")
    dump(pid, "complete")


if __name__ == "__main__":
    main()
