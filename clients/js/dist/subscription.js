import { SwitchboardError } from './errors.js';
export class Subscription {
    /** @internal */
    constructor(host, channel, options) {
        this.host = host;
        this.options = options;
        /** @internal */ this.state = 'pending';
        /** @internal */ this.ackTo = 0;
        /** @internal */ this.ackSent = 0;
        /** @internal */ this.everSubscribed = false;
        this.channel = channel;
        this.pos = options.since ? { ...options.since } : undefined;
        this.ready = new Promise((resolve, reject) => {
            this.resolveReady = resolve;
            this.rejectReady = reject;
        });
        this.ready.catch(() => { });
    }
    /** The subscription's state. */
    get status() { return this.state; }
    /** The last position delivered to onMessage (or the subscribe's position before any). */
    get position() { return this.pos ? { ...this.pos } : undefined; }
    /** Publishes to this channel (no subscription is needed for that; this is a shortcut). */
    publish(data, opts) {
        if (this.state === 'closed')
            return Promise.reject(new SwitchboardError('unsubscribed', `${this.channel}: unsubscribed`));
        return this.host.publish(this.channel, data, opts);
    }
    /** Who is subscribed to the channel (namespaces with `presence = true`). */
    presence() {
        if (this.state === 'closed')
            return Promise.reject(new SwitchboardError('unsubscribed', `${this.channel}: unsubscribed`));
        return this.host.presence(this.channel);
    }
    /** The channel's kept publications (namespaces with a history). */
    history(opts) {
        if (this.state === 'closed')
            return Promise.reject(new SwitchboardError('unsubscribed', `${this.channel}: unsubscribed`));
        return this.host.history(this.channel, opts);
    }
    /** Ends the subscription (the session forgets the channel too). */
    unsubscribe() {
        return this.host._unsubscribe(this);
    }
}
