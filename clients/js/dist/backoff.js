export const DEFAULT_BACKOFF = { minMs: 500, maxMs: 30000 };
/** The cap for retry number `attempt` (0-based): minMs·2^attempt, at most maxMs. */
export function backoffCap(attempt, opts) {
    const min = Math.max(0, opts.minMs);
    const max = Math.max(min, opts.maxMs);
    // 2^attempt overflows to Infinity for large attempts; Math.min handles that.
    return Math.min(max, min * Math.pow(2, Math.max(0, attempt)));
}
/**
 * "Full jitter" (AWS architecture blog, 2015): a uniformly random delay in [0, cap], so a
 * crowd of clients that lost the same server does not come back in waves.
 * `random` returns a number in [0, 1) like Math.random.
 */
export function backoffDelay(attempt, opts, random = Math.random) {
    const cap = backoffCap(attempt, opts);
    const r = Math.min(Math.max(random(), 0), 1);
    return Math.floor(r * cap);
}
