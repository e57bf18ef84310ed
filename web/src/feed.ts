// The live list of waiting tickets: WatchTickets gives each queue's waiting tickets (snapshot),
// then every change. After a lost connection or a server restart the watch is opened again and
// resumes each queue right after the last event seen on it, so nothing is lost or shown twice;
// a queue with no event seen yet is read again from a fresh snapshot.
import { Code } from "@connectrpc/connect";
import { TicketState, type Ticket, type TicketEvent } from "./gen/callrouter/v1/callrouter_pb";
import { codeOf, explain, type Api } from "./api";
import { millis } from "./dom";

export interface Waiting {
  ticket: Ticket;
  /** The queue (`<cooperator>/<team>`) the ticket waits in. */
  feed: string;
}

/** How the page is kept up to date: live by a watch, or (a token that may not watch) by polling. */
export type Link = "connecting" | "live" | "reconnecting" | "refused" | "polling";

export interface FeedListener {
  changed(event: TicketEvent | null): void;
  link(state: Link, why?: string): void;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;

function feedOf(event: TicketEvent): string {
  const at = event.position.lastIndexOf("@");
  if (at > 0) return event.position.slice(0, at);
  return `${event.ticket?.cooperatorId || "platform"}/${event.teamId}`;
}

export class LiveQueue {
  readonly waiting = new Map<string, Waiting>();
  private readonly positions = new Map<string, string>();
  private abort: AbortController | null = null;
  private stopped = false;

  constructor(
    private readonly api: Api,
    private readonly teams: string[],
    private readonly listener: FeedListener,
  ) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  /** Waiting tickets, most urgent first, then oldest. */
  sorted(): Ticket[] {
    return [...this.waiting.values()]
      .map((w) => w.ticket)
      .sort((a, b) => a.urgency - b.urgency || millis(a.createdAt) - millis(b.createdAt));
  }

  private async run(): Promise<void> {
    let delay = RETRY_FIRST_MS;
    while (!this.stopped) {
      this.abort = new AbortController();
      this.listener.link("connecting");
      // Queues with no position are read again from a snapshot: drop what they showed.
      for (const [id, w] of this.waiting) {
        if (!this.positions.has(w.feed)) this.waiting.delete(id);
      }
      try {
        const stream = this.api.desk.watchTickets(
          { teamIds: this.teams, resumeFrom: Object.fromEntries(this.positions) },
          {
            signal: this.abort.signal,
            // The server answers the watch at once, before any event: the page is live.
            onHeader: () => {
              this.listener.link("live");
              delay = RETRY_FIRST_MS;
            },
          },
        );
        for await (const event of stream) {
          this.apply(event);
          this.listener.changed(event);
        }
      } catch (error) {
        if (this.stopped) return;
        const code = codeOf(error);
        if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
          this.listener.link("refused", explain(error));
          return;
        }
        if (code === Code.InvalidArgument) {
          // A position the store no longer knows: start over from snapshots.
          this.positions.clear();
        }
      }
      if (this.stopped) return;
      this.listener.link("reconnecting");
      this.listener.changed(null);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  private apply(event: TicketEvent): void {
    const feed = feedOf(event);
    if (event.position) this.positions.set(feed, event.position);
    const ticket = event.ticket;
    if (!ticket) return;
    if (ticket.state === TicketState.QUEUED && ticket.teamId === event.teamId) {
      this.waiting.set(ticket.ticketId, { ticket, feed });
    } else if (this.waiting.get(ticket.ticketId)?.feed === feed) {
      this.waiting.delete(ticket.ticketId);
    }
  }
}
