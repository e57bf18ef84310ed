"""An interoperability check with a client not written in Rust: Python grpcio.

Compiles the project's .proto at run time, then against a running callrouter: checks health, lists
services by reflection, routes a call as the telephony platform, and claims, accepts and completes
it as an agent. Exits non-zero on the first failed check.

Usage: client.py ADDRESS PROTO_DIR   (tokens in CALLROUTER_TELEPHONY_TOKEN, CALLROUTER_AGENT_TOKEN)

Over TLS when CALLROUTER_TLS_CA names the CA's PEM file; with a client certificate (mutual TLS)
when CALLROUTER_TLS_CERT and CALLROUTER_TLS_KEY name its PEM files.
"""

import importlib.resources
import os
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc

passed = 0


def check(condition, what):
    global passed
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    passed += 1
    print(f"ok: {what}", flush=True)


def compile_proto(proto_dir):
    out = tempfile.mkdtemp(prefix="callrouter-py-")
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    status = protoc.main([
        "protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(proto_dir, "callrouter", "v1", "callrouter.proto"),
    ])
    check(status == 0, "the project's .proto compiles with grpc_tools")
    sys.path.insert(0, out)


def read(variable):
    path = os.environ.get(variable)
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def open_channel(address):
    ca = read("CALLROUTER_TLS_CA")
    if ca is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=read("CALLROUTER_TLS_KEY"),
        certificate_chain=read("CALLROUTER_TLS_CERT"),
    )
    return grpc.secure_channel(address, credentials)


def main(address, proto_dir):
    compile_proto(proto_dir)
    from callrouter.v1 import callrouter_pb2 as pb
    from callrouter.v1 import callrouter_pb2_grpc as rpc

    telephony = [("authorization", "Bearer " + os.environ["CALLROUTER_TELEPHONY_TOKEN"])]
    agent = [("authorization", "Bearer " + os.environ["CALLROUTER_AGENT_TOKEN"])]
    channel = open_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "callrouter.v1.CallRouting", "callrouter.v1.AgentDesk"]:
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        check(status == health_pb2.HealthCheckResponse.SERVING, f"health of '{service}' is SERVING")

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in replies[0].list_services_response.service}
    for name in ["callrouter.v1.CallRouting", "callrouter.v1.AgentDesk", "callrouter.v1.Operations", "grpc.health.v1.Health"]:
        check(name in names, f"reflection lists {name}")

    routing = rpc.CallRoutingStub(channel)
    desk = rpc.AgentDeskStub(channel)
    call = pb.RouteCallRequest(
        call_id="python-interop-1",
        address=pb.Address(free_text=os.environ["CALLROUTER_ADDRESS"]),
        issue_type="technical.plumbing.leak",
    )
    call.received_at.GetCurrentTime()
    routed = routing.RouteCall(call, metadata=telephony, timeout=5)
    check(routed.queued and not routed.duplicate, "RouteCall queued a ticket")
    check(routed.decision.cooperator_id == "touraine-logement", "the decision names the cooperator")
    check(routed.decision.address_match.level == pb.BUILDING, "the address matched a building")
    ticket = routed.ticket

    try:
        routing.RouteCall(pb.RouteCallRequest(issue_type="other"), metadata=telephony, timeout=5)
        check(False, "a call without call_id is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "a call without call_id is INVALID_ARGUMENT")
    try:
        routing.RouteCall(call, timeout=5)
        check(False, "a call without a token is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAUTHENTICATED, "a call without a token is UNAUTHENTICATED")

    claimed = desk.ClaimNextTicket(
        pb.ClaimNextTicketRequest(team_ids=[ticket.team_id], lease_seconds=60), metadata=agent, timeout=5
    ).ticket
    check(claimed.ticket_id == ticket.ticket_id, "the agent claims the routed ticket")
    accepted = desk.AcceptTicket(
        pb.TicketActionRequest(ticket_id=claimed.ticket_id, lease_token=claimed.lease_token), metadata=agent, timeout=5
    )
    check(accepted.state == pb.IN_PROGRESS, "the agent accepts it")
    done = desk.CompleteTicket(
        pb.CompleteTicketRequest(ticket_id=claimed.ticket_id, lease_token=claimed.lease_token, resolution="fixed"),
        metadata=agent,
        timeout=5,
    )
    check(done.state == pb.COMPLETED and done.resolution == "fixed", "the agent completes it")

    # Many calls in flight at once on the one channel: answers that become ready together leave
    # the server together, and grpcio must still read each one whole, for its own call.
    in_flight = []
    for n in range(200):
        together = pb.RouteCallRequest()
        together.CopyFrom(call)
        together.call_id = f"python-together-{n}"
        in_flight.append((together.call_id, routing.RouteCall.future(together, metadata=telephony, timeout=10)))
    answers = [(call_id, future.result()) for call_id, future in in_flight]
    check(
        all(a.queued and not a.duplicate and a.ticket.call_id == call_id for call_id, a in answers),
        "200 calls at once on one channel are each answered with their own queued ticket",
    )
    check(len({a.ticket.ticket_id for _, a in answers}) == 200, "the 200 calls got 200 tickets")
    print(f"interop: {passed} passed, 0 failed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
