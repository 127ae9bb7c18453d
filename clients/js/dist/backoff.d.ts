/** Reconnect delay bounds. */
export interface BackoffOptions {
    /** Cap of the first retry's delay (ms). Default 500. */
    minMs: number;
    /** Largest cap (ms). Default 30 000. */
    maxMs: number;
}
export declare const DEFAULT_BACKOFF: BackoffOptions;
/** The cap for retry number `attempt` (0-based): minMs·2^attempt, at most maxMs. */
export declare function backoffCap(attempt: number, opts: BackoffOptions): number;
/**
 * "Full jitter" (AWS architecture blog, 2015): a uniformly random delay in [0, cap], so a
 * crowd of clients that lost the same server does not come back in waves.
 * `random` returns a number in [0, 1) like Math.random.
 */
export declare function backoffDelay(attempt: number, opts: BackoffOptions, random?: () => number): number;
