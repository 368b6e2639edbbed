import { EventEmitter } from "node:events";
import type { LiveEvent } from "../../lib/live-events";

/**
 * The in-process domain event bus. Domain code publishes after its transaction commits; the socket.io
 * gateway (server/events/gateway.ts) is the only subscriber that talks to browsers.
 */
export class EventBus {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(100);
  }
  publish(event: LiveEvent): void {
    this.emitter.emit("event", event);
  }
  subscribe(listener: (event: LiveEvent) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }
}
