import { SwitchboardError } from './errors.js';
import type { HistoryOptions, HistoryResult, Position, PresenceEvent, PresenceResult, Publication, PublishOptions, PublishResult, RecoveryInfo, SubscribedInfo } from './types.js';
export interface SubscriptionOptions {
    /** Each publication, once, in offset order (duplicates by (epoch, offset) are dropped). */
    onMessage?(pub: Publication): void;
    /** A client joined (namespaces with `join_leave = true`). */
    onJoin?(ev: PresenceEvent): void;
    /** A client left. */
    onLeave?(ev: PresenceEvent): void;
    /** After every recovery: a reconnect, a `gap:true`, a `since` of yours.
     *  `recovered: false` = publications were lost: reload your state. */
    onRecovered?(info: RecoveryInfo): void;
    /** Each time the channel is (re)subscribed or restored by a resume. */
    onSubscribed?(info: SubscribedInfo): void;
    /** The subscription was refused (unknown_namespace, permission_denied, …); it is over. */
    onError?(err: SwitchboardError): void;
    /** Start from this position: the publications after it are delivered first. */
    since?: Position;
    /** The subscribe token of a private channel, or a function fetching one (called per subscribe). */
    token?: string | (() => string | Promise<string>);
    /** Acknowledge delivered publications (the protocol's `ack`; needed on at-least-once
     *  namespaces, harmless elsewhere). Default true. */
    ack?: boolean;
}
/** The client's side of a subscription; what the Switchboard class needs from it. */
export interface SubscriptionHost {
    publish(channel: string, data: unknown, opts?: PublishOptions): Promise<PublishResult>;
    presence(channel: string): Promise<PresenceResult>;
    history(channel: string, opts?: HistoryOptions): Promise<HistoryResult>;
    /** @internal */ _unsubscribe(sub: Subscription): Promise<void>;
}
export type SubscriptionState = 
/** Wanted; the subscribe is not sent on this connection yet (offline, or waiting). */
'pending'
/** The subscribe is on its way. */
 | 'subscribing'
/** Live: publications are delivered. */
 | 'subscribed'
/** A `gap:true` came: re-subscribing from the last delivered position. */
 | 'resyncing'
/** Unsubscribed or refused. */
 | 'closed';
export declare class Subscription {
    private readonly host;
    readonly options: SubscriptionOptions;
    readonly channel: string;
    /** @internal */ state: SubscriptionState;
    /** @internal The last delivered position (or the subscribe's). */
    pos: Position | undefined;
    /** @internal */ ackTo: number;
    /** @internal */ ackSent: number;
    /** @internal */ everSubscribed: boolean;
    /** @internal */ resolveReady: (info: SubscribedInfo) => void;
    /** @internal */ rejectReady: (err: SwitchboardError) => void;
    /** Resolves at the first `subscribed` (or restore); rejects if the subscribe is refused. */
    readonly ready: Promise<SubscribedInfo>;
    /** @internal */
    constructor(host: SubscriptionHost, channel: string, options: SubscriptionOptions);
    /** The subscription's state. */
    get status(): SubscriptionState;
    /** The last position delivered to onMessage (or the subscribe's position before any). */
    get position(): Position | undefined;
    /** Publishes to this channel (no subscription is needed for that; this is a shortcut). */
    publish(data: unknown, opts?: PublishOptions): Promise<PublishResult>;
    /** Who is subscribed to the channel (namespaces with `presence = true`). */
    presence(): Promise<PresenceResult>;
    /** The channel's kept publications (namespaces with a history). */
    history(opts?: HistoryOptions): Promise<HistoryResult>;
    /** Ends the subscription (the session forgets the channel too). */
    unsubscribe(): Promise<void>;
}
