// The desk's link to the server: the contract's AgentDesk and Operations clients over gRPC-web on
// the page's own origin, with the signed-in token, and what their errors mean in an agent's words.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AgentDesk, Operations } from "./gen/callrouter/v1/callrouter_pb";

export interface Api {
  desk: Client<typeof AgentDesk>;
  ops: Client<typeof Operations>;
}

export function connect(token: string): Api {
  const bearer: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [bearer] });
  return { desk: createClient(AgentDesk, transport), ops: createClient(Operations, transport) };
}

export function codeOf(error: unknown): Code {
  return ConnectError.from(error).code;
}

/** What went wrong, said to an agent. */
export function explain(error: unknown): string {
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.Unauthenticated:
      return "Jeton refusé : reconnectez-vous avec un jeton valide.";
    case Code.PermissionDenied:
      return "Votre jeton ne permet pas cette action.";
    case Code.NotFound:
      return "Ce ticket n'existe pas ou ne vous est pas visible.";
    case Code.FailedPrecondition:
      return "Ce ticket n'est plus à vous : il a été repris par un collègue ou votre réservation a expiré.";
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return "Le service des files d'attente ne répond pas. Réessayez dans un instant.";
    case Code.ResourceExhausted:
      return "Trop de demandes en cours pour ce poste. Réessayez dans un instant.";
    case Code.InvalidArgument:
      return `Demande refusée : ${e.rawMessage}`;
    default:
      return `Erreur inattendue (${Code[e.code]}) : ${e.rawMessage}`;
  }
}
