"""What each lifecycle script costs Redis per call: creates, claims, accepts and completes N
tickets, then completes N more with the next claim ("done, next", the complete_claim script), then
claims N across six teams' queues (as a desk claims for an agent of several teams), marking the
end of each phase so that each figure is one script's alone. Two ways of counting:
- instructions: one call at a time, against a redis-server running under callgrind, whose counters
  are dumped at each phase's end (callgrind_control), given its pid;
- time: with `time` for the pid, Redis's own statistics are reset at each phase's start and its
  `usec_per_call` for EVALSHA is printed at the end (one caller, its calls sent 50 at a time).

Run by benches/script_cost.sh; speaks RESP over a socket (no client library needed), and loads
each script as the server does (`callrouter script NAME`).
Usage: python3 lifecycle_cost.py CALLROUTER_BINARY PORT VALGRIND_PID|time N
"""

import itertools
import pathlib
import re
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

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self.read()

    def run(self, batch, commands):
        """Sends the commands `batch` at a time (each batch in one write), returns the replies."""
        replies, commands = [], iter(commands)
        while chunk := list(itertools.islice(commands, batch)):
            self.sock.sendall(b"".join(self.encode(c) for c in chunk))
            replies.extend(self.read() for _ in chunk)
        return replies

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
            # A ticket row's separator, the byte 255, is kept as the code point U+DCFF.
            return data.decode(errors="surrogateescape")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def load(r, binary, name):
    text = subprocess.run([binary, "script", name], check=True, capture_output=True).stdout
    return r.call("SCRIPT", "LOAD", text)


def callgrind_phases(pid):
    """Ends a phase by dumping the counters of the redis-server under callgrind."""

    def end(phase):
        subprocess.run(["callgrind_control", "-d", phase or "unmeasured", pid], check=True,
                       capture_output=True)

    return end


def timed_phases(r, n):
    """Ends a phase by printing its scripts' Redis time per call, then resets the statistics."""

    def end(phase):
        if phase not in ("start", None):
            stats = r.call("INFO", "commandstats")
            usec = re.search(r"cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)", stats)
            if not usec or int(usec.group(1)) != n:
                raise RuntimeError("phase %s: expected %d script calls in %r" % (phase, n, stats))
            print("%s script: %s µs of Redis time per call (one caller, 50 calls at a time, %d calls)"
                  % (phase, usec.group(2), n))
        r.call("CONFIG", "RESETSTAT")

    return end


# The teams of an agent of the front desk and the technical sectors, as desks claim across them.
TEAMS = [TEAM] + ["touraine-logement.%s" % t for t in (
    "front-desk", "technical.tl-sud-loire", "technical.tl-nord-loire", "rent", "social")]


def create_command(create, common, i, team=TEAM):
    """The create script's call for ticket i of team, with a routed call's arguments: the shown
    field before and after the creation time, and the kept field, joined as the server joins them
    (SHOWN_FIELDS and KEPT_FIELDS in src/store/redis/reply.rs)."""
    ticket, call = "tl-%d" % i, "c-%d" % i
    shown_before = packed(ticket, "touraine-logement", "technical.plumbing.leak", "TL-00012", "")
    shown_after = packed("", "1795780124779", "12 rue Nationale 37000 Tours")
    kept = packed(call, "", "touraine-logement.supervisor", "touraine-logement", team, DETAILS)
    return ("EVALSHA", create, 4, P + "call:" + call, P + "q:" + team, P + "t:" + ticket,
            P + "call:" + call, *common, ticket, call, team, 2, "", 99999999999999,
            shown_before, shown_after, kept)


def packed(*values):
    """Values joined by the byte 255, as a ticket's packed fields are."""
    return b"\xff".join(v.encode() for v in values)


def row_fields():
    """The ticket fields of a row, in order: TICKET_FIELDS in src/store/redis/reply.rs, the lists
    of names it joins."""
    source = (pathlib.Path(__file__).parent.parent / "src/store/redis/reply.rs").read_text()
    lists = re.search(r"pub const TICKET_FIELDS: \[&str; \d+\] = joined\(&\[(.*?)\]\);", source)
    fields = []
    for name in re.findall(r"&(\w+)", lists.group(1)):
        names = re.search(r"const %s: \[&str; \d+\] = \[(.*?)\];" % name, source, re.S)
        fields += re.findall(r'"(\w+)"', names.group(1))
    return fields


ROW_FIELDS = row_fields()


def held_of(row):
    """The ticket id and lease token of a claimed ticket (a row: the values of the ticket fields,
    in the order of TICKET_FIELDS, joined by the byte 255)."""
    values = dict(zip(ROW_FIELDS, row.split("\udcff")))
    return values["ticket_id"], values["lease_token"]


def main():
    binary = sys.argv[1]
    port, pid, n = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    r = Redis(port)
    timed = pid == "time"
    dump = timed_phases(r, n) if timed else callgrind_phases(pid)
    # Timed, calls go 50 at a time, so that Redis runs them back to back as under load (a lone
    # caller's pauses leave its caches cold); counted, one at a time.
    batch = 50 if timed else 1
    create, claim, accept, complete, complete_claim = (
        load(r, binary, s) for s in ("create", "claim", "accept", "complete", "complete_claim")
    )
    common = [P, 1000, 2592000000]
    dump("start")
    r.run(batch, (create_command(create, common, i) for i in range(n)))
    dump("create")
    claimed = r.run(batch, (
        ("EVALSHA", claim, 1, P + "q:" + TEAM, *common, "agent-1", 600000, "claim-%d" % i)
        for i in range(n)))
    held = [held_of(fields) for fields in claimed]
    dump("claim")
    r.run(batch, (
        ("EVALSHA", accept, 1, P + "t:" + ticket_id, *common, ticket_id, "agent-1", token, 600000)
        for ticket_id, token in held))
    dump("accept")
    r.run(batch, (
        ("EVALSHA", complete, 1, P + "t:" + ticket_id, *common, ticket_id, "agent-1", token,
         "fixed")
        for ticket_id, token in held))
    dump("complete")
    # "Done, next": N tickets more; `batch` agents claim one each, then each completes its ticket
    # with the next claim until all N are completed (N complete_claim calls, the last ones
    # finding the queue empty).
    r.run(batch, (create_command(create, common, i) for i in range(n, 2 * n)))
    agents = ["agent-%d" % a for a in range(batch)]
    holds = {}
    for agent, fields in zip(agents, r.run(batch, (
            ("EVALSHA", claim, 1, P + "q:" + TEAM, *common, agent, 600000, "")
            for agent in agents))):
        holds[agent] = held_of(fields)
    dump(None)
    completed = 0
    while holds:
        working = list(holds.items())
        replies = r.run(batch, (
            ("EVALSHA", complete_claim, 2, P + "t:" + ticket_id, P + "q:" + TEAM, *common,
             ticket_id, agent, token, "fixed", 600000, "")
            for agent, (ticket_id, token) in working))
        for (agent, _), (_, following) in zip(working, replies):
            completed += 1
            if following:
                holds[agent] = held_of(following)
            else:
                del holds[agent]
    if completed != n:
        raise RuntimeError("done, next: %d tickets completed, not %d" % (completed, n))
    dump("done_next")
    # Claims across six teams: N tickets more in each team's queue, then N claims of an agent of
    # the six (the queues stay full, so that each claim compares six heads).
    r.run(batch, (create_command(create, common, (2 + k) * n + i, team)
                  for k, team in enumerate(TEAMS) for i in range(n)))
    dump(None)
    r.run(batch, (
        ("EVALSHA", claim, len(TEAMS), *(P + "q:" + t for t in TEAMS), *common, "agent-6", 600000,
         "claim-6-%d" % i)
        for i in range(n)))
    dump("claim_6_queues")


if __name__ == "__main__":
    main()
