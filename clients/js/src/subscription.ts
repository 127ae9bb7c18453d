import { SwitchboardError } from './errors.js';
import type {
  HistoryOptions, HistoryResult, Position, PresenceEvent, PresenceResult, Publication, PublishOptions,
  PublishResult, RecoveryInfo, SubscribedInfo,
} from './types.js';

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
  | 'pending'
  /** The subscribe is on its way. */
  | 'subscribing'
  /** Live: publications are delivered. */
  | 'subscribed'
  /** A `gap:true` came: re-subscribing from the last delivered position. */
  | 'resyncing'
  /** Unsubscribed or refused. */
  | 'closed';

export class Subscription {
  readonly channel: string;
  /** @internal */ state: SubscriptionState = 'pending';
  /** @internal The last delivered position (or the subscribe's). */
  pos: Position | undefined;
  /** @internal */ ackTo = 0;
  /** @internal */ ackSent = 0;
  /** @internal */ everSubscribed = false;
  /** @internal */ resolveReady!: (info: SubscribedInfo) => void;
  /** @internal */ rejectReady!: (err: SwitchboardError) => void;
  /** Resolves at the first `subscribed` (or restore); rejects if the subscribe is refused. */
  readonly ready: Promise<SubscribedInfo>;

  /** @internal */
  constructor(private readonly host: SubscriptionHost, channel: string, readonly options: SubscriptionOptions) {
    this.channel = channel;
    this.pos = options.since ? { ...options.since } : undefined;
    this.ready = new Promise<SubscribedInfo>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => { /* an app that does not await `ready` gets onError instead */ });
  }

  /** The subscription's state. */
  get status(): SubscriptionState { return this.state; }

  /** The last position delivered to onMessage (or the subscribe's position before any). */
  get position(): Position | undefined { return this.pos ? { ...this.pos } : undefined; }

  /** Publishes to this channel (no subscription is needed for that; this is a shortcut). */
  publish(data: unknown, opts?: PublishOptions): Promise<PublishResult> {
    if (this.state === 'closed') return Promise.reject(new SwitchboardError('unsubscribed', `${this.channel}: unsubscribed`));
    return this.host.publish(this.channel, data, opts);
  }

  /** Who is subscribed to the channel (namespaces with `presence = true`). */
  presence(): Promise<PresenceResult> {
    if (this.state === 'closed') return Promise.reject(new SwitchboardError('unsubscribed', `${this.channel}: unsubscribed`));
    return this.host.presence(this.channel);
  }

  /** The channel's kept publications (namespaces with a history). */
  history(opts?: HistoryOptions): Promise<HistoryResult> {
    if (this.state === 'closed') return Promise.reject(new SwitchboardError('unsubscribed', `${this.channel}: unsubscribed`));
    return this.host.history(this.channel, opts);
  }

  /** Ends the subscription (the session forgets the channel too). */
  unsubscribe(): Promise<void> {
    return this.host._unsubscribe(this);
  }
}
