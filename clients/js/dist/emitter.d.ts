/** A minimal typed event emitter (no dependency on node's or the DOM's). */
export declare class Emitter<Events extends {
    [K in keyof Events]: (...args: any[]) => void;
}> {
    private listeners;
    /** Adds a listener; returns a function that removes it. */
    on<K extends keyof Events>(event: K, fn: Events[K]): () => void;
    /** Adds a listener called once. */
    once<K extends keyof Events>(event: K, fn: Events[K]): () => void;
    off<K extends keyof Events>(event: K, fn: Events[K]): void;
    protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void;
}
