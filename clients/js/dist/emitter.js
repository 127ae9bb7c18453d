/** A minimal typed event emitter (no dependency on node's or the DOM's). */
export class Emitter {
    constructor() {
        this.listeners = {};
    }
    /** Adds a listener; returns a function that removes it. */
    on(event, fn) {
        var _a;
        ((_a = this.listeners)[event] ?? (_a[event] = [])).push(fn);
        return () => this.off(event, fn);
    }
    /** Adds a listener called once. */
    once(event, fn) {
        const wrapper = ((...args) => { off(); fn(...args); });
        const off = this.on(event, wrapper);
        return off;
    }
    off(event, fn) {
        const list = this.listeners[event];
        if (!list)
            return;
        const i = list.indexOf(fn);
        if (i >= 0)
            list.splice(i, 1);
    }
    emit(event, ...args) {
        const list = this.listeners[event];
        if (!list)
            return;
        for (const fn of [...list]) {
            try {
                fn(...args);
            }
            catch (err) {
                // A throwing listener must not break the client's state machine.
                setTimeout(() => { throw err; }, 0);
            }
        }
    }
}
