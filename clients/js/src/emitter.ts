/** A minimal typed event emitter (no dependency on node's or the DOM's). */
export class Emitter<Events extends { [K in keyof Events]: (...args: any[]) => void }> {
  private listeners: { [K in keyof Events]?: Array<Events[K]> } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, fn: Events[K]): () => void {
    (this.listeners[event] ??= []).push(fn);
    return () => this.off(event, fn);
  }

  /** Adds a listener called once. */
  once<K extends keyof Events>(event: K, fn: Events[K]): () => void {
    const wrapper = ((...args: any[]) => { off(); fn(...args); }) as Events[K];
    const off = this.on(event, wrapper);
    return off;
  }

  off<K extends keyof Events>(event: K, fn: Events[K]): void {
    const list = this.listeners[event];
    if (!list) return;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const list = this.listeners[event];
    if (!list) return;
    for (const fn of [...list]) {
      try {
        fn(...args);
      } catch (err) {
        // A throwing listener must not break the client's state machine.
        setTimeout(() => { throw err; }, 0);
      }
    }
  }
}
