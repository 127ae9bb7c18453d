/** What the server said in its `disconnect` event before closing (protocol.md). */
export interface DisconnectNotice {
  code: number;
  reason: string;
  reconnect: boolean;
  /** A graceful shutdown (1001): when to come back, drawn by the server so that its clients
   *  do not all reconnect at once. The first attempt waits at least this long. */
  afterMs?: number;
}

/** What the client does after a connection ended. */
export interface ClosePolicy {
  /** Try again (after the backoff delay). */
  reconnect: boolean;
  /** Offer the session id on the next connect (resume). False: forget the session. */
  resume: boolean;
  /** Fetch a new token (getToken) before the next attempt. */
  newToken: boolean;
  /** Why, for the `disconnected` event and the docs. */
  why: string;
}

/**
 * The retry policy, per close code (docs/protocol.md, "Close codes"). `notice` is the server's
 * `disconnect` event if one came just before the close; its `reconnect` flag wins over the
 * code's default. `canRefreshToken`: the app gave `getToken`, so a 4005 (token expired) can be
 * followed by a connect with a new token.
 */
export function closePolicy(code: number, notice: DisconnectNotice | undefined, canRefreshToken: boolean): ClosePolicy {
  const retry = (why: string, resume = true, newToken = false): ClosePolicy => ({ reconnect: true, resume, newToken, why });
  const stop = (why: string, resume = true): ClosePolicy => ({ reconnect: false, resume, newToken: false, why });
  switch (code) {
    case 1002: return stop('protocol error: fix the client');
    case 1003: return stop('unsupported data: fix the client');
    case 1007: return stop('invalid UTF-8 or compressed data: fix the client');
    case 1009: return stop('message too big: fix the client');
    case 1010: return stop('extension negotiation failed');
    case 1008: return stop(notice?.reason ? `${notice.reason}: fix the client` : 'policy violation (rate limit or too many pings)');
    case 4004: return stop('session resumed by another connection (takeover): not resuming it from here', false);
    case 4005:
      return canRefreshToken ? retry('token expired: reconnecting with a new token', true, true)
                             : stop('token expired and no getToken to fetch a new one');
    case 4003:
      if (notice && !notice.reconnect) return stop('disconnected by the server (reconnect: false)', false);
      return retry('disconnected by the server');
    default:
      break;
  }
  if (notice && !notice.reconnect) return stop(notice.reason || `closed ${code} with reconnect: false`);
  // 1000 (only an echo of our own close, so unexpected here), 1001 (shutting down), 1005/1006
  // (no close frame: the network), 1011-1014 (server trouble), 4000 (slow consumer),
  // 4001 (idle timeout) and codes this client does not know yet: reconnect and resume.
  return retry(code === 1001 ? 'server shutting down' : code === 4000 ? 'slow consumer'
    : code === 4001 ? 'idle timeout' : code === 1006 ? 'connection lost' : `closed ${code}`);
}

/** A `connect` refused with one of these codes is not retried unless a new token can be had. */
export function isAuthError(code: string): boolean {
  return code === 'invalid_token' || code === 'token_required' || code === 'permission_denied';
}
